"""The instructions a kernel's warps stall at most, from an ncu source page exported as CSV
(ncu --import R --page source --csv --print-source sass): share of all stall samples, the
instruction and the one before it (a stall on the first write to a register often belongs to
the instruction that still reads it).
    python3 scripts/stall-top.py ncu-spec-sass.csv[.gz] [N]"""
import csv
import gzip
import sys

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 12
with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
    rows = list(csv.reader(f))
header = next(i for i, r in enumerate(rows) if "Source" in r and "Warp Stall Sampling (All Samples)" in r)
cols = rows[header]
source, samples = cols.index("Source"), cols.index("Warp Stall Sampling (All Samples)")
sass = [(r[source].strip(), int(r[samples] or 0)) for r in rows[header + 1 :] if len(r) > samples]
total = sum(n for _, n in sass) or 1
print(f"{total} stall samples over {len(sass)} instructions; the {top} most:")
for i in sorted(range(len(sass)), key=lambda i: -sass[i][1])[:top]:
    before = sass[i - 1][0] if i > 0 else ""
    print(f"{100 * sass[i][1] / total:5.1f}%  #{i:<5} {sass[i][0][:64]:64}  after: {before[:48]}")
