#!/usr/bin/python3
"""Writes text/testdata/clip_golden.json, the ids that OpenAI's CLIP
tokenizer gives a few hundred captions, and the tiny fixture's expectations.

Nothing here is shipped with ddgi: fetch openai/CLIP (simple_tokenizer.py and
bpe_simple_vocab_16e6.txt.gz) and rspeer/python-ftfy, and run with Debian's
Python and python3-regex:
    PYTHONPATH=FTFY_DIR:CLIP_DIR/clip /usr/bin/python3 scripts/clip_golden.py \
        CLIP_DIR/clip/bpe_simple_vocab_16e6.txt.gz
Per caption it records
  ids:      SimpleTokenizer.encode(text) (no start/end framing), the reference;
  ids_lite: only where it differs, the same with ftfy's mojibake repair
            (fix_encoding) and NFC normalisation off, the two steps ddgi skips;
  clean:    the text after clean-up with those two steps off (what ddgi's
            clipClean must give), and pieces: the pre-tokenisation regex's
            matches on it; these two need no vocabulary.
Then it runs SimpleTokenizer on text/testdata/clipbpe_tiny/merges.txt.gz and
writes text/testdata/clipbpe_tiny/expected.json.
"""
import gzip
import html
import json
import os
import sys
import unicodedata

import ftfy
import regex
import simple_tokenizer as st

sys.path.insert(0, os.path.dirname(__file__))
from clip_captions import captions  # noqa: E402

root = os.path.join(os.path.dirname(__file__), "..")
full = ftfy.fix_text


def lite(t):
    return full(t, fix_encoding=False, normalization=None)


def fresh(tok):
    tok.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}


def run(tok, texts):
    out = []
    for text in texts:
        st.ftfy.fix_text = full
        fresh(tok)
        ids = tok.encode(text)
        st.ftfy.fix_text = lite
        fresh(tok)
        ids2 = tok.encode(text)
        clean = st.whitespace_clean(st.basic_clean(text)).lower()
        c = {"text": text, "ids": ids}
        if ids2 != ids:
            c["ids_lite"] = ids2
        c["clean"] = clean
        c["pieces"] = regex.findall(tok.pat, clean)
        out.append(c)
    st.ftfy.fix_text = full
    return out


def dump(path, head, cases):
    # One case per line: reviewable diffs.
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        for k, v in head.items():
            f.write("%s: %s,\n" % (json.dumps(k), json.dumps(v, ensure_ascii=False)))
        f.write('"cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")


ver = "ftfy %s, regex %s, Python %s (Unicode %s)" % (
    getattr(ftfy, "__version__", "?"), regex.__version__, sys.version.split()[0], unicodedata.unidata_version)

tok = st.SimpleTokenizer(sys.argv[1])
cases = run(tok, captions())
dump(os.path.join(root, "text/testdata/clip_golden.json"), {
    "reference": "openai/CLIP clip/simple_tokenizer.py with bpe_simple_vocab_16e6.txt.gz; " + ver,
    "fields": "ids: SimpleTokenizer.encode(text), no framing; ids_lite (only where different): the same with "
              "ftfy.fix_text(fix_encoding=False, normalization=None); clean: the cleaned text with those steps off; "
              "pieces: the pre-tokenisation regex's matches on clean",
}, cases)
print(len(cases), "captions,", sum("ids_lite" in c for c in cases), "differ without mojibake repair / NFC")

tiny = os.path.join(root, "text/testdata/clipbpe_tiny")
tt = st.SimpleTokenizer(os.path.join(tiny, "merges.txt.gz"))
texts = [
    "The woman is smiling.", "THE WOMAN'S smile", "the the the", "a woman, a man", "women", "smiles!!",
    "<|startoftext|>the<|endoftext|>", "  the\t woman  ", "", "é", "the woman " * 20, "x", "thethe",
]
dump(os.path.join(tiny, "expected.json"), {
    "reference": "openai/CLIP clip/simple_tokenizer.py on merges.txt.gz; " + ver,
}, [{"text": t, "ids": tt.encode(t)} for t in texts])
