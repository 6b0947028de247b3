"""``yibao report --format xlsx|pdf --data-docs DIR_OR_URL`` (defect: "XLSX/PDF
exports carry no Data Docs link"): the workbook and the PDF link to the Data
Docs page of the region and month exactly as the HTML's quality section does
(report/render.py ``data_docs_link``), and carry no such link without
--data-docs.

Same hand-made warehouse as tests/test_report_exports.py; the workbook is read
back with openpyxl, the PDF (printed by headless Chromium) with pypdf.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from expectations.docs_pages import page_path
from report.cli import report_main
from tests.conftest_report import build_warehouse, ensure_chromium

REGION, PERIOD = "640100", "2023-11"
PAGE = page_path(REGION, PERIOD)  # regions/640100/2023-11.html
URL = "https://docs.example.org/yibao/data-docs/"
LABEL = "数据质量明细（Data Docs）"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("export-links") / "warehouse.duckdb")


@pytest.fixture()
def docs(tmp_path) -> Path:
    """A Data Docs folder holding the page of the region and month (the CLI checks it)."""
    page = tmp_path / "docs" / PAGE
    page.parent.mkdir(parents=True)
    page.write_text("<html>Data Docs</html>", encoding="utf-8")
    return tmp_path / "docs"


def export(warehouse, fmt: str, out: Path, data_docs: str | None = None) -> Path:
    extra = ["--data-docs", data_docs] if data_docs else []
    assert report_main(["--warehouse", f"duckdb:///{warehouse}", "--region", REGION,
                        "--period", PERIOD, "--format", fmt, "--out", str(out), *extra]) == 0
    return out


def xlsx_links(path: Path) -> list[tuple[str, str, str]]:
    """(sheet, cell text, hyperlink target) of every hyperlink in the workbook."""
    wb = load_workbook(path)
    return [(ws.title, cell.value, cell.hyperlink.target)
            for ws in wb.worksheets for row in ws.iter_rows() for cell in row if cell.hyperlink]


def pdf_uris(path: Path) -> list[str]:
    """The /URI of every link annotation of the PDF."""
    import pypdf

    uris = []
    for page in pypdf.PdfReader(path).pages:
        for annot in page.get("/Annots") or ():
            action = annot.get_object().get("/A")
            if action is not None and "/URI" in action.get_object():
                uris.append(str(action.get_object()["/URI"]))
    return uris


def html_href(warehouse, out: Path, data_docs: str) -> str:
    html = export(warehouse, "html", out, data_docs).read_text(encoding="utf-8")
    return re.search(r'id="data-docs"><a href="([^"]+)"', html).group(1)


@pytest.mark.parametrize("where", ["folder", "url"])
def test_xlsx_export_carries_the_data_docs_link(warehouse, docs, tmp_path, where):
    """Defect "XLSX/PDF exports carry no Data Docs link" (workbook): with
    --data-docs the workbook holds one hyperlink, labelled in Chinese first,
    whose target is the HTML's href: relative to the workbook for a folder,
    the URL + page path for a URL."""
    data_docs = str(docs) if where == "folder" else URL
    want = f"../docs/{PAGE}" if where == "folder" else URL + PAGE
    out = tmp_path / "out" / "r.xlsx"
    assert html_href(warehouse, out.with_suffix(".html"), data_docs) == want
    links = xlsx_links(export(warehouse, "xlsx", out, data_docs))
    assert len(links) == 1, links
    sheet, text, target = links[0]
    assert target == want
    assert text.startswith(LABEL) and sheet == "说明"
    if where == "folder":  # Excel resolves the target against the workbook's folder
        assert (out.parent / target).resolve() == (docs / PAGE).resolve()


def test_pdf_export_carries_the_data_docs_link(warehouse, docs, tmp_path):
    """Defect "XLSX/PDF exports carry no Data Docs link" (PDF): the quality
    section's link is a clickable link annotation whose /URI is the HTML's href
    — the relative one, not the temporary page Chromium printed resolved it
    against — and the URL + page path for a URL."""
    ensure_chromium()
    out = tmp_path / "out" / "r.pdf"
    for data_docs, want in ((str(docs), f"../docs/{PAGE}"), (URL, URL + PAGE)):
        assert html_href(warehouse, out.with_suffix(".html"), data_docs) == want
        uris = pdf_uris(export(warehouse, "pdf", out, data_docs))
        assert want in uris, uris  # (one annotation per line box if the link wraps)
        assert not [u for u in uris if PAGE in u and u != want], uris


def test_exports_without_data_docs_carry_no_link(warehouse, tmp_path):
    """Without --data-docs nothing changes: no hyperlink in the workbook, no
    Data Docs link in the PDF."""
    ensure_chromium()
    assert xlsx_links(export(warehouse, "xlsx", tmp_path / "r.xlsx")) == []
    assert not [u for u in pdf_uris(export(warehouse, "pdf", tmp_path / "r.pdf"))
                if "regions/" in u or "data-docs" in u]
