"""Containerfile parsing: each instruction, continuations, errors with line numbers."""

from __future__ import annotations

import pytest

from urunc.image import ImageBuildError, Recipe, parse_containerfile, parse_reference


def parse(body: str) -> Recipe:
    return parse_containerfile("FROM scratch\n" + body, "Containerfile")


def test_from_scratch_alone_gives_an_empty_recipe() -> None:
    recipe = parse_containerfile("FROM scratch\n")
    assert recipe.copies == () and recipe.labels == () and recipe.env == ()
    assert recipe.cmd is None and recipe.entrypoint is None and recipe.workdir == "/"


def test_from_scratch_accepts_stage_name_and_any_case() -> None:
    recipe = parse_containerfile("from SCRATCH AS build\nlabel a=b\n")
    assert recipe.labels == (("a", "b"),)  # parsed on past the FROM line


@pytest.mark.parametrize(
    "line", ["FROM alpine", "FROM alpine:3.19", "FROM --platform=linux/amd64 scratch"]
)
def test_from_other_than_scratch_is_refused_naming_it(line: str) -> None:
    with pytest.raises(
        ImageBuildError,
        match=r"^Containerfile:1: only 'FROM scratch' is supported, got",
    ) as exc:
        parse_containerfile(line + "\n")
    assert line in str(exc.value)


def test_missing_from_is_an_error() -> None:
    with pytest.raises(
        ImageBuildError,
        match=r"^Containerfile: no instructions \(expected FROM scratch\)$",
    ):
        parse_containerfile("# only a comment\n\n")


def test_instruction_before_from_names_its_line() -> None:
    with pytest.raises(ImageBuildError, match=r"^Containerfile:2: LABEL before FROM"):
        parse_containerfile("# c\nLABEL a=b\nFROM scratch\n")


def test_second_from_is_refused() -> None:
    with pytest.raises(ImageBuildError, match=r"^Containerfile:2: only one FROM"):
        parse_containerfile("FROM scratch\nFROM scratch\n")


def test_unknown_instruction_names_line_and_keyword() -> None:
    with pytest.raises(ImageBuildError) as exc:
        parse("\n# comment\nLABEL a=b\nFROBNICATE x\n")
    assert str(exc.value) == "Containerfile:5: unknown instruction 'FROBNICATE'"
    assert "\n" not in str(exc.value)


def test_docker_instruction_we_do_not_implement_says_unsupported() -> None:
    with pytest.raises(
        ImageBuildError, match=r"^Containerfile:2: unsupported instruction 'RUN'$"
    ):
        parse("RUN echo hi\n")


def test_copy_sources_destination_and_chmod() -> None:
    recipe = parse("COPY --chmod=0755 a b /dst/\nCOPY kernel /unikernel/kernel\n")
    first, second = recipe.copies
    assert (
        first.sources == ("a", "b")
        and first.dest == "/dst/"
        and first.chmod == 0o755
        and first.line == 2
    )
    assert (
        second.sources == ("kernel",)
        and second.dest == "/unikernel/kernel"
        and second.chmod is None
    )


def test_copy_json_form_allows_spaces() -> None:
    (step,) = parse('COPY ["my file", "/dst dir/"]\n').copies
    assert step.sources == ("my file",) and step.dest == "/dst dir/"


def test_copy_relative_destination_follows_workdir() -> None:
    (step,) = parse("WORKDIR /app\nCOPY a sub/\n").copies
    assert step.dest == "/app/sub/"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("COPY only", "needs at least one source and a destination"),
        ("COPY --chmod=rwx a /b", "invalid --chmod value 'rwx'"),
        ("COPY --from=build a /b", "unsupported COPY flag '--from=build'"),
    ],
)
def test_copy_errors_name_line_and_value(args: str, message: str) -> None:
    with pytest.raises(ImageBuildError, match=r"^Containerfile:2: ") as exc:
        parse(args + "\n")
    assert message in str(exc.value)


def test_label_pairs_quotes_and_continuations() -> None:
    recipe = parse(
        "LABEL a=1 \\\n  # comment inside continuation\n  b=\"v 2\" \\\n  c='x=y'\n"
    )
    assert dict(recipe.labels) == {"a": "1", "b": "v 2", "c": "x=y"}


def test_later_label_overrides_earlier() -> None:
    assert dict(parse("LABEL a=1\nLABEL a=2\n").labels) == {"a": "2"}


def test_env_key_value_and_legacy_forms() -> None:
    recipe = parse('ENV A=1 B="two words"\nENV C legacy value with spaces\nENV A=3\n')
    assert dict(recipe.env) == {
        "A": "3",
        "B": "two words",
        "C": "legacy value with spaces",
    }


def test_env_unclosed_quote_is_an_error_with_line() -> None:
    with pytest.raises(ImageBuildError, match=r"^Containerfile:2: cannot parse"):
        parse('ENV A="open\n')


def test_env_token_without_equals_is_an_error() -> None:
    with pytest.raises(
        ImageBuildError, match=r"^Containerfile:2: expected key=value, got 'B'"
    ):
        parse("ENV A=1 B\n")


@pytest.mark.parametrize("keyword", ["CMD", "ENTRYPOINT"])
def test_exec_and_shell_forms(keyword: str) -> None:
    attr = keyword.lower()
    assert getattr(parse(f'{keyword} ["/k", "-v", "a b"]\n'), attr) == (
        "/k",
        "-v",
        "a b",
    )
    assert getattr(parse(f"{keyword} /k -v 'a b'\n"), attr) == (
        "/bin/sh",
        "-c",
        "/k -v 'a b'",
    )


@pytest.mark.parametrize("keyword", ["CMD", "ENTRYPOINT", "COPY"])
@pytest.mark.parametrize("args", ['["hello"', "[/k, x]", '["a", 1]', '{"a": "b"}]', "[" * 5000 + "]" * 5000],
                         ids=["unclosed", "unquoted", "non-string", "object", "deeply-nested"])
def test_a_broken_json_form_is_an_error_not_a_shell_command(keyword: str, args: str) -> None:
    # docker would run '["hello"' as a shell command; an image has no shell to run it.
    if not args.startswith("["):
        args = "[" + args
    with pytest.raises(ImageBuildError) as info:
        parse(f"{keyword} {args}\n")
    message = str(info.value)
    assert message.startswith(f"Containerfile:2: {keyword} starts with '[' but is not a JSON array of strings: ")
    assert "\n" not in message and len(message) < 200
    assert repr(args[:20])[1:-1] in message


def test_empty_exec_form_cmd_is_kept() -> None:
    assert parse("CMD []\n").cmd == ()


def test_workdir_absolute_relative_and_normalised() -> None:
    recipe = parse("WORKDIR /a\nWORKDIR b/../c\n")
    assert recipe.workdir == "/a/c" and recipe.workdirs == ("/a", "/a/c")


def test_instruction_without_arguments_is_an_error() -> None:
    with pytest.raises(
        ImageBuildError, match=r"^Containerfile:2: WORKDIR needs arguments"
    ):
        parse("WORKDIR\n")


def test_error_uses_the_given_source_name() -> None:
    with pytest.raises(ImageBuildError, match=r"^/x/Containerfile\.uk:1: "):
        parse_containerfile("FROM debian\n", "/x/Containerfile.uk")


@pytest.mark.parametrize(
    ("text", "name", "familiar", "stem"),
    [
        ("hello", "docker.io/library/hello:latest", "hello:latest", "hello_latest"),
        ("hello:1.0", "docker.io/library/hello:1.0", "hello:1.0", "hello_1.0"),
        ("me/hello:v1", "docker.io/me/hello:v1", "me/hello:v1", "hello_v1"),
        ("ghcr.io/u/hello:v1", "ghcr.io/u/hello:v1", "ghcr.io/u/hello:v1", "hello_v1"),
        (
            "localhost:5000/hello",
            "localhost:5000/hello:latest",
            "localhost:5000/hello:latest",
            "hello_latest",
        ),
    ],
)
def test_reference_normalisation(
    text: str, name: str, familiar: str, stem: str
) -> None:
    ref = parse_reference(text)
    assert (ref.name, ref.familiar, ref.archive_stem) == (name, familiar, stem)


@pytest.mark.parametrize(
    "text", ["Hello", "hello@sha256:abcd", "hello:", "hello:bad/tag", ""]
)
def test_invalid_references_are_refused(text: str) -> None:
    with pytest.raises(ImageBuildError):
        parse_reference(text)
