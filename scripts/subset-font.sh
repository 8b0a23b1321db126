#!/usr/bin/env bash
# Regenerates client/assets/fonts/thin-gothic-ja.ttf, the Japanese font the
# apps' windows embed: a subset of IPA Gothic (Debian's fonts-ipafont-gothic)
# holding ASCII, Latin-1, kana, CJK punctuation, full-width forms, every
# character of the base string tables (brand/default/strtable_*.stb and the
# default brand's patches) and the headroom list client/assets/fonts/headroom.txt.
# The full font is 6 MB; the subset stays well under 500 KB.
#
# The IPA Font License v1.0 (client/assets/fonts/IPA_Font_License.txt) lets us
# redistribute a derived font under that licence, with a different font and
# file name (hence "Thin Gothic JA", not "IPA..."), and with a way to put the
# original back: see client/assets/fonts/README.md.
#
# Run it after adding Japanese texts; the test
# `gui::fonts::tests::the_font_covers_the_string_tables` says when it is due.
# Needs: apt-get install fonts-ipafont-gothic fonttools
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=${IPAG_TTF:-/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf}
OUT=client/assets/fonts/thin-gothic-ja.ttf
if [ ! -f "$SRC" ]; then
  echo "subset-font: $SRC missing: apt-get install fonts-ipafont-gothic" >&2
  exit 1
fi
if ! /usr/bin/python3 -c 'import fontTools' 2>/dev/null; then
  echo "subset-font: Python fontTools missing: apt-get install fonttools" >&2
  exit 1
fi

text=$(mktemp)
trap 'rm -f "$text"' EXIT
# Values of the tables (comments dropped) and the headroom list.
for f in brand/default/strtable_*.stb; do
  grep -v '^[[:space:]]*\(#\|//\)' "$f" || true
done >"$text"
grep -v '^#' client/assets/fonts/headroom.txt >>"$text"

/usr/bin/python3 - "$SRC" "$text" "$OUT" <<'PY'
import sys
from fontTools import subset
from fontTools.ttLib import TTFont

src, text_file, out = sys.argv[1:4]
ranges = [(0x20, 0x7E), (0xA0, 0xFF), (0x2010, 0x2027), (0x2030, 0x203B), (0x2190, 0x2193),
          (0x2212, 0x2212), (0x25A0, 0x25CF), (0x3000, 0x30FF), (0xFF01, 0xFF9F)]
unicodes = {c for a, b in ranges for c in range(a, b + 1)}
unicodes |= {ord(c) for c in open(text_file, encoding="utf-8").read() if ord(c) >= 0x20}

opts = subset.Options()
opts.layout_features = ["*"]
opts.hinting = False
opts.name_IDs = ["*"]
opts.name_languages = ["*"]
opts.name_legacy = True
font = TTFont(src)
s = subset.Subsetter(opts)
s.populate(unicodes=sorted(unicodes))
s.subset(font)

# Article 3-1(4) of the licence: the derived font must not carry the original's name.
family, full, ps = "Thin Gothic JA", "Thin Gothic JA Regular", "ThinGothicJA-Regular"
names = font["name"]
for rec in list(names.names):
    if rec.nameID in (1, 4, 16, 18, 21):
        names.setName(family if rec.nameID != 4 else full, rec.nameID, rec.platformID, rec.platEncID, rec.langID)
    elif rec.nameID == 3:
        names.setName(f"{ps};subset", 3, rec.platformID, rec.platEncID, rec.langID)
    elif rec.nameID == 6:
        names.setName(ps, 6, rec.platformID, rec.platEncID, rec.langID)
    elif rec.nameID == 2:
        names.setName("Regular", 2, rec.platformID, rec.platEncID, rec.langID)
font.save(out)
print(f"{len(font.getGlyphOrder())} glyphs")
PY
cp /usr/share/doc/fonts-ipafont-gothic/copyright client/assets/fonts/IPA_Font_License.txt
echo "subset-font: wrote $OUT ($(stat -c %s "$OUT") bytes)"
