"""OCI lifecycle hooks, run by the runtime with the container's state on stdin.

prestart (deprecated) and createRuntime run at ``create`` once the init is in
its namespaces (Docker's networking lives there: libnetwork-setkey configures
the container's network namespace from a prestart hook); poststart after
``start``, poststop after ``delete``. createContainer and startContainer hooks
would run inside the container's mount namespace, which a unikernel does not
have: they are refused at ``create``, not silently skipped.
"""

from __future__ import annotations

from urunc import _errors, _jsonlite, _log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RUNTIME_SIDE = ("prestart", "createRuntime", "poststart", "poststop")
IN_CONTAINER = ("createContainer", "startContainer")
DEFAULT_TIMEOUT = 60
MAX_HOOKS = 64


def validate(hooks: Any) -> dict[str, list[dict[str, Any]]]:
    """The hooks of a spec, checked: absolute paths, string args and env, sane timeouts."""
    if hooks is None:
        return {}
    if not isinstance(hooks, dict):
        raise _errors.BundleError("hooks in config.json must be an object")
    checked: dict[str, list[dict[str, Any]]] = {}
    for stage, entries in hooks.items():
        if stage in IN_CONTAINER and entries:
            raise _errors.NotSupported(f"{stage} hooks are not supported for unikernel containers")
        if stage not in RUNTIME_SIDE:
            continue
        if not isinstance(entries, list) or len(entries) > MAX_HOOKS:
            raise _errors.BundleError(f"hooks.{stage} in config.json must be a list of at most {MAX_HOOKS}")
        for hook in entries:
            if not isinstance(hook, dict) or not isinstance(hook.get("path"), str) \
                    or not hook["path"].startswith("/"):
                raise _errors.BundleError(f"hooks.{stage} entry needs an absolute path: {hook!r}")
            for key in ("args", "env"):
                value = hook.get(key)
                if value is not None and (not isinstance(value, list)
                                          or not all(isinstance(v, str) for v in value)):
                    raise _errors.BundleError(f"hooks.{stage} {key} must be a list of strings")
            timeout = hook.get("timeout", DEFAULT_TIMEOUT)
            if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout <= 3600:
                raise _errors.BundleError(f"invalid hooks.{stage} timeout {timeout!r}")
        checked[stage] = entries
    return checked


def run(stage: str, hooks: dict[str, list[dict[str, Any]]], state: dict[str, Any], *, fatal: bool) -> None:
    """Run every hook of STAGE in order; a failure raises (FATAL) or is logged."""
    entries = hooks.get(stage) or []
    if not entries:
        return
    import subprocess

    payload = _jsonlite.dumps(state).encode()
    for hook in entries:
        path = hook["path"]
        try:
            result = subprocess.run(hook.get("args") or [path], executable=path, input=payload,
                                    env=dict(_split_env(hook.get("env") or [])), capture_output=True,
                                    timeout=hook.get("timeout", DEFAULT_TIMEOUT), check=False,
                                    close_fds=True)
            failure = None if result.returncode == 0 else (
                f"exit status {result.returncode}: " + _last_line(result.stderr or result.stdout))
        except subprocess.TimeoutExpired:
            failure = f"timed out after {hook.get('timeout', DEFAULT_TIMEOUT)}s"
        except OSError as exc:
            failure = exc.strerror or str(exc)
        if failure is not None:
            message = f"{stage} hook {path} failed: {failure}"
            if fatal:
                raise _errors.HostError(message)
            _log.warning(message)


def _split_env(env: list[str]) -> list[tuple[str, str]]:
    return [(k, v) for k, _, v in (e.partition("=") for e in env) if k]


def _last_line(output: bytes) -> str:
    lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip()[:500] if lines else "no output"
