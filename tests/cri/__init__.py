"""A small CRI v1 client for the tests, over containerd's CRI plugin.

`api.proto` here is the subset of the upstream CRI API the tests use. Its
Python stubs are generated at test time by grpcio-tools (`compile_api`, about
a second, into a throw-away directory) rather than committed: the generated
code must match the installed protobuf runtime, and the .proto stays the one
source to read and review.

    api = compile_api(tmp_dir)
    cri = CriClient(api, containerd_socket)
    pod = cri.run_pod_sandbox(pod_config(api, "web", log_dir), "urunc")
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

PROTO = Path(__file__).resolve().parent / "api.proto"


class CriApi:
    """The generated modules: `pb` (messages) and `grpc` (service stubs)."""

    def __init__(self, pb: ModuleType, grpc_mod: ModuleType) -> None:
        self.pb = pb
        self.grpc = grpc_mod


def compile_api(out_dir: Path) -> CriApi:
    """Run protoc (grpcio-tools) on api.proto into *out_dir* and import the result."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    out_dir.mkdir(parents=True, exist_ok=True)
    argv = ["protoc", f"-I{PROTO.parent}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
            os.fspath(PROTO)]
    if protoc.main(argv) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    pb = importlib.import_module("api_pb2")
    grpc_mod = importlib.import_module("api_pb2_grpc")
    return CriApi(pb, grpc_mod)


class CriClient:
    """The RuntimeService calls, each with a deadline; errors are grpc.RpcError."""

    def __init__(self, api: CriApi, socket_path: str, timeout: float = 120.0) -> None:
        import grpc

        self.api = api
        self.pb = api.pb
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.runtime = api.grpc.RuntimeServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _call(self, name: str, request: Any, timeout: float | None = None) -> Any:
        return getattr(self.runtime, name)(request, timeout=timeout or self.timeout)

    def version(self) -> Any:
        return self._call("Version", self.pb.VersionRequest(version="v1"))

    def status(self) -> Any:
        return self._call("Status", self.pb.StatusRequest())

    def wait_network_ready(self, timeout: float = 30.0) -> None:
        """Wait until the CRI plugin has loaded a CNI config (it watches conf_dir)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            conds = {c.type: c for c in self.status().status.conditions}
            net = conds.get("NetworkReady")
            if net is not None and net.status:
                return
            last = f"{net.reason}: {net.message}" if net is not None else "no NetworkReady condition"
            time.sleep(0.2)
        raise TimeoutError(f"CRI network not ready after {timeout:.0f}s ({last})")

    def run_pod_sandbox(self, config: Any, handler: str) -> str:
        req = self.pb.RunPodSandboxRequest(config=config, runtime_handler=handler)
        return self._call("RunPodSandbox", req).pod_sandbox_id  # type: ignore[no-any-return]

    def pod_sandbox_status(self, pod_id: str, verbose: bool = False) -> Any:
        return self._call("PodSandboxStatus", self.pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id,
                                                                              verbose=verbose))

    def stop_pod_sandbox(self, pod_id: str) -> None:
        self._call("StopPodSandbox", self.pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))

    def remove_pod_sandbox(self, pod_id: str) -> None:
        self._call("RemovePodSandbox", self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

    def list_pod_sandboxes(self) -> list[Any]:
        return list(self._call("ListPodSandbox", self.pb.ListPodSandboxRequest()).items)

    def create_container(self, pod_id: str, config: Any, sandbox_config: Any) -> str:
        req = self.pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox_config)
        return self._call("CreateContainer", req).container_id  # type: ignore[no-any-return]

    def start_container(self, container_id: str) -> None:
        self._call("StartContainer", self.pb.StartContainerRequest(container_id=container_id))

    def stop_container(self, container_id: str, timeout: int = 0) -> None:
        self._call("StopContainer", self.pb.StopContainerRequest(container_id=container_id, timeout=timeout),
                   timeout=self.timeout + timeout)

    def exec_sync(self, container_id: str, cmd: list[str], timeout: int = 30) -> Any:
        """ExecSync: what a kubelet exec probe calls; (stdout, stderr, exit_code) in the response."""
        req = self.pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout)
        return self._call("ExecSync", req, timeout=self.timeout + timeout)

    def remove_container(self, container_id: str) -> None:
        self._call("RemoveContainer", self.pb.RemoveContainerRequest(container_id=container_id))

    def list_containers(self, pod_id: str = "") -> list[Any]:
        req = self.pb.ListContainersRequest(filter=self.pb.ContainerFilter(pod_sandbox_id=pod_id))
        return list(self._call("ListContainers", req).containers)

    def container_status(self, container_id: str, verbose: bool = False) -> Any:
        return self._call("ContainerStatus", self.pb.ContainerStatusRequest(container_id=container_id,
                                                                            verbose=verbose))

    def wait_container_state(self, container_id: str, state: int, timeout: float = 60.0) -> Any:
        """Poll ContainerStatus until the container is in *state*; returns that status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.container_status(container_id).status
            if status.state == state:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"container {container_id} still in state {status.state} after {timeout:.0f}s")
            time.sleep(0.1)


def pod_config(api: CriApi, name: str, log_dir: Path, *, uid: str, annotations: dict[str, str] | None = None,
               namespace: str = "urunc-test") -> Any:
    pb = api.pb
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=0),
        hostname=name,
        log_directory=os.fspath(log_dir),
        annotations=annotations or {},
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD))),
    )


def container_config(api: CriApi, name: str, image: str, *, args: list[str] | None = None,
                     command: list[str] | None = None, annotations: dict[str, str] | None = None,
                     envs: dict[str, str] | None = None, share_pod_pids: bool = False,
                     mounts: list[tuple[str, str, bool]] | None = None) -> Any:
    """A container config as the kubelet writes it: own PID namespace unless the pod shares one;
    MOUNTS are (host path, container path, read-only), as the kubelet passes volumes."""
    pb = api.pb
    namespaces = pb.NamespaceOption(network=pb.POD, pid=pb.POD if share_pod_pids else pb.CONTAINER, ipc=pb.POD)
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=0),
        image=pb.ImageSpec(image=image),
        command=command or [],
        args=args or [],
        envs=[pb.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
        mounts=[pb.Mount(container_path=dst, host_path=src, readonly=ro) for src, dst, ro in (mounts or [])],
        annotations=annotations or {},
        log_path=f"{name}.log",
        linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(namespace_options=namespaces)),
    )


def parse_cri_log(text: str) -> tuple[list[str], list[str]]:
    """CRI log lines `TIMESTAMP STREAM TAG TEXT` → (stdout text, stderr text), partial lines (P) joined."""
    out: dict[str, list[str]] = {"stdout": [], "stderr": []}
    pending: dict[str, str] = {"stdout": "", "stderr": ""}
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3 or parts[1] not in out or parts[2] not in ("F", "P"):
            raise ValueError(f"not a CRI log line: {line!r}")
        body = parts[3] if len(parts) == 4 else ""
        pending[parts[1]] += body
        if parts[2] == "F":
            out[parts[1]].append(pending[parts[1]])
            pending[parts[1]] = ""
    return out["stdout"], out["stderr"]
