"""docs/crd-reference.md is generated from the types and current."""

from __future__ import annotations

from thv import docgen
from thv.crdgen import crd_objects


def test_reference_is_current() -> None:
    assert docgen.main(["--check"]) == 0, "run `python -m thv.docgen` (scripts/generate.sh)"


def test_reference_lists_every_spec_field() -> None:
    text = docgen.render_reference()
    for crd in crd_objects():
        kind = crd["spec"]["names"]["kind"]
        assert f"## {kind}" in text
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for field in spec["properties"]:
            assert f"| `{field}` |" in text, f"{kind}.spec.{field} missing from the reference"


def test_check_reports_a_stale_file(tmp_path: object) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "ref.md"
    out.write_text("stale\n")
    assert docgen.main(["--check", "--out", str(out)]) == 1
    assert docgen.main(["--out", str(out)]) == 0
    assert docgen.main(["--check", "--out", str(out)]) == 0
