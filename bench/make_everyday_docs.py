"""Writes the binary documents of the everyday dev set (eval/data/everyday/): a Word hiring plan with a
table (python-docx) and a PDF datasheet (fpdf2, when installed). The text documents of the set are
written by hand and committed as they are; this script only rebuilds the two binary ones.

    .venv/bin/python bench/make_everyday_docs.py
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "eval" / "data" / "everyday"


def hiring_plan(path: Path) -> None:
    import docx

    d = docx.Document()
    d.core_properties.title = "Hiring plan 2025"
    d.add_heading("Engineering hiring plan 2025", level=1)
    d.add_paragraph("This plan lists the roles the engineering department will hire for in 2025. Budget holders "
                    "must confirm each role with HR before the job is advertised.")
    d.add_heading("Roles", level=2)
    rows = [("Role", "Owner", "Due", "Headcount"),
            ("Backend engineer", "Maria Santos", "March 2025", "2"),
            ("Data analyst", "Tiago Lopes", "June 2025", "1"),
            ("QA engineer", "Maria Santos", "September 2025", "1")]
    table = d.add_table(rows=len(rows), cols=len(rows[0]))
    table.style = "Table Grid"
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Process", level=2)
    d.add_paragraph("Each candidate has two interviews: a technical interview and a conversation with the team lead.")
    d.add_paragraph("Offers above the salary band need approval from the CFO, Helena Duarte.")
    d.add_paragraph("Job adverts go on the careers page and on two job boards.", style="List Bullet")
    d.add_paragraph("Referral bonuses are paid after the new hire's sixth month.", style="List Bullet")
    d.save(path)


def datasheet(path: Path) -> bool:
    try:
        from fpdf import FPDF
    except ImportError:
        print("fpdf2 is not installed: no PDF datasheet")
        return False
    pdf = FPDF()
    pdf.set_title("Lumen X2 LED desk lamp datasheet")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Lumen X2 LED desk lamp - Datasheet", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "The Lumen X2 is a dimmable LED desk lamp for offices and studios. Its arm folds flat "
                         "for transport and the base holds a USB-C charging port.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, "Specifications", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    for key, value in [("Power consumption", "9 W"), ("Luminous flux", "850 lm"),
                       ("Colour temperature", "2700 K to 6500 K"), ("Weight", "1.4 kg"), ("Arm reach", "45 cm"),
                       ("Warranty", "5 years")]:
        pdf.cell(60, 7, key)
        pdf.cell(0, 7, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.multi_cell(0, 6, "The lamp switches itself off after 8 hours without use.", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return True


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    hiring_plan(OUT / "hiring-plan-2025.docx")
    print("wrote", OUT / "hiring-plan-2025.docx")
    if datasheet(OUT / "lumen-x2-datasheet.pdf"):
        print("wrote", OUT / "lumen-x2-datasheet.pdf")
