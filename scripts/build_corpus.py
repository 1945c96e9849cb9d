#!/usr/bin/env python3
"""build_corpus.py - the pre-training corpus of issue 15 out of Debian
packages that scripts/fetch-corpus.sh has downloaded and extracted.

    python3 scripts/build_corpus.py --pkgs DIR --out build/corpus

DIR holds one folder per package, named as the package, with the package's
files as dpkg-deb -x lays them out (DIR/fortunes/usr/share/games/...). The
standard library only (html.parser, gzip, unicodedata), so the system
python3 runs it.

Each source below yields documents (an id and a text): a book of the Bible,
a fortune file, a page of a manual. Every text is cleaned the same way
(clean()), then each document goes whole either to train.txt or to
heldout.txt: per source, documents in the order of the SHA-256 of their id
are set aside while the source's held-out bytes stay within HELDOUT_FRAC of
its bytes (a source of one document is all training). Documents are
separated by one blank line; train.txt is in the order of the SHA-256 of the
ids (the sources interleaved, so any tail of it is a mix), heldout.txt too.

Pages whose cleaned text is empty or the same as an earlier page's are
left out.

moby-dick (data/moby-dick.txt) is the evaluation text and must not be
trained on: no package here contains it, but it quotes older texts (the
Bible above all); with --moby, each line of train.txt that holds part of a
run of MOBY_WORDS consecutive words (letters only, case folded) that
moby-dick also has is dropped, listed on stderr, and the document checked
again.

Writes OUT/train.txt, OUT/heldout.txt and OUT/manifest.tsv (source,
document id, split, bytes) and the figures of each source on stderr.
Deterministic: the same packages give the same bytes.
"""

import argparse
import bisect
import gzip
import hashlib
import html.parser
import os
import re
import subprocess
import sys
import unicodedata

HELDOUT_FRAC = 0.04
MOBY_WORDS = 12


# ---------------------------------------------------------------- cleaning

_DROP = dict.fromkeys(
    [c for c in range(0x20) if c not in (0x09, 0x0A)] + [0x7F] + list(range(0x80, 0xA0))
    + [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0xFFFE, 0xFFFF])
_SPACES = {0xA0: " ", 0x2007: " ", 0x202F: " ", 0x2028: "\n", 0x2029: "\n", 0x0C: "\n", 0x0B: "\n"}


def decode(raw, name):
    """UTF-8; a file that is not is Latin-1 (the older fortune and text
    files of Debian are one or the other)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def clean(text):
    """NFC; CR LF and CR -> LF; no-break and other odd spaces -> space,
    form feeds and line separators -> LF; other control characters and
    zero-width characters dropped (tab and LF kept); trailing blanks cut;
    at most one blank line in a row; no blank lines at either end."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_SPACES).translate(_DROP)
    lines = [ln.rstrip(" \t") for ln in text.split("\n")]
    out, blank = [], 0
    for ln in lines:
        if ln:
            if blank and out:
                out.append("")
            out.append(ln)
            blank = 0
        else:
            blank = 1
    return "\n".join(out)


# ---------------------------------------------------------------- HTML -> text

_BLOCK = {"p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "table",
          "tr", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
          "blockquote", "figure", "figcaption", "caption", "hr", "br", "title", "thead", "tbody",
          "tfoot", "details", "summary", "form", "fieldset", "address"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source",
         "embed", "param", "track"}
_PRE_MARK = "\ue000"  # brackets the text of a <pre> in HtmlText.parts
_INVISIBLE = {"script", "style", "head", "noscript", "template", "svg", "button", "select"}


class HtmlText(html.parser.HTMLParser):
    """The visible text of an HTML page, one line per block element.

    root(tag, attrs) chooses the element whose content is kept (None: the
    whole page); elements whose class has a word of skip_classes, whose id
    is in skip_ids, or whose tag is invisible, are left out with their
    content. Inside <pre> the
    whitespace is kept; elsewhere runs of it are one space. A cell of a
    table ends with a tab."""

    def __init__(self, root=None, skip_classes=(), skip_ids=()):
        super().__init__(convert_charrefs=True)
        self.root = root
        self.skip_classes = set(skip_classes)
        self.skip_ids = set(skip_ids)
        self.stack = []     # (tag, kind): kind 'root', 'skip' or ''
        self.inside = root is None
        self.skipping = 0
        self.pre = 0
        self.parts = []

    def _newline(self):
        self.parts.append("\n")

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            if tag in ("br", "hr") and self.inside and not self.skipping:
                self._newline()
            return
        kind = ""
        a = dict(attrs)
        cls = set((a.get("class") or "").split())
        if not self.inside and self.root and self.root(tag, attrs):
            kind = "root"
            self.inside = True
        elif self.inside and (tag in _INVISIBLE or cls & self.skip_classes or a.get("id") in self.skip_ids):
            kind = "skip"
            self.skipping += 1
        self.stack.append((tag, kind))
        if self.inside and not self.skipping and tag in _BLOCK:
            self._newline()
        if tag == "pre":
            self.pre += 1
            if self.pre == 1 and self.inside and not self.skipping:
                self.parts.append(_PRE_MARK)

    def handle_startendtag(self, tag, attrs):
        if tag in ("br", "hr") and self.inside and not self.skipping:
            self._newline()

    def handle_endtag(self, tag):
        if tag in _VOID or not any(t == tag for t, _ in self.stack):
            return
        while self.stack:
            t, kind = self.stack.pop()
            if t == "pre":
                self.pre -= 1
                if self.pre == 0 and self.inside and not self.skipping:
                    self.parts.append(_PRE_MARK)
            if self.inside and not self.skipping and t in _BLOCK:
                self._newline()
            if self.inside and not self.skipping and t in ("td", "th"):
                self.parts.append("\t")
            if kind == "skip":
                self.skipping -= 1
            elif kind == "root":
                self.inside = False
            if t == tag:
                break

    def handle_data(self, data):
        if not self.inside or self.skipping:
            return
        data = data.replace(_PRE_MARK, "")
        if not self.pre:
            data = re.sub(r"[ \t\r\n]+", " ", data)
        self.parts.append(data)

    def text(self):
        out = []
        for k, seg in enumerate("".join(self.parts).split(_PRE_MARK)):
            if k % 2:  # inside <pre>: as written
                out.append(seg)
                continue
            lines = []
            for ln in seg.split("\n"):
                ln = re.sub(r" *\t *", "\t", re.sub(r" {2,}", " ", ln)).strip(" \t")
                lines.append(ln)
            out.append("\n".join(lines))
        return "".join(out)


def html_text(path, root=None, skip_classes=(), skip_ids=()):
    with open(path, "rb") as f:
        raw = f.read()
    p = HtmlText(root, skip_classes, skip_ids)
    p.feed(decode(raw, path))
    p.close()
    return p.text()


def attr_has(attrs, name, word):
    v = dict(attrs).get(name) or ""
    return word in v.split()


# ---------------------------------------------------------------- sources

def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".gz") or path.endswith(".dz"):
        raw = gzip.decompress(raw)
    return decode(raw, path)


def files_under(top, pred):
    out = []
    for d, dirs, names in os.walk(top):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(d, n)
            if not os.path.islink(p) and pred(os.path.relpath(p, top)):
                out.append(p)
    return out


def src_bible(pk):
    """The King James Bible: bible-kjv-text's compressed text, decompressed
    by the bible program of bible-kjv, one document per book; the chapter
    heading ("Genesis 1") then one verse a line, without verse numbers."""
    prog = os.path.join(pk, "bible-kjv", "usr", "bin", "bible")
    data = os.path.join(pk, "bible-kjv-text", "usr", "lib")
    out = subprocess.run([prog, "-p", data, "-l", "1000000", "Gen1:1-Rev22:21"],
                         stdin=subprocess.DEVNULL, capture_output=True, check=True).stdout
    books, order = {}, []
    book = None
    for ln in decode(out, prog).split("\n"):
        m = re.match(r"^(\S.*) (\d+)$", ln)
        if m:
            book = m.group(1)
            if book not in books:
                books[book] = []
                order.append(book)
            books[book].append("\n" + ln + "\n")
            continue
        m = re.match(r"^\s+\d+ (.*)$", ln)
        if m:
            if book is None:
                raise SystemExit("build_corpus: bible: a verse before any chapter heading")
            books[book].append(m.group(1))
        elif ln.strip():
            raise SystemExit("build_corpus: bible: unexpected line %r" % ln[:80])
    if len(order) != 66:
        raise SystemExit("build_corpus: bible: %d books, expected 66" % len(order))
    for b in order:
        yield "bible/" + b, "\n".join(books[b])


def src_fortunes(pk):
    """fortune's cookie files, one document per file, the fortunes (between
    lines of '%') separated by blank lines; not ascii-art (pictures) nor
    translate-me (other languages)."""
    top = os.path.join(pk, "fortunes", "usr", "share", "games", "fortunes")
    for p in files_under(top, lambda r: "." not in r and r not in ("ascii-art", "translate-me")):
        items = re.split(r"(?m)^%\n", read(p).replace("\r\n", "\n"))
        yield "fortunes/" + os.path.basename(p), "\n\n".join(i.strip("\n") for i in items if i.strip())


def src_jargon(pk):
    """The Jargon File, as jargon-text ships it (plain text)."""
    yield "jargon/jargon.txt", read(os.path.join(pk, "jargon-text", "usr", "share", "doc",
                                                 "jargon-text", "jargon.txt.gz"))


def src_python(pk):
    """The Python 3.11 documentation: the HTML pages (Sphinx), the main
    body of each (div role=main) as text, without the permalink marks;
    not the indexes, the search page or the module index."""
    top = os.path.join(pk, "python3.11-doc", "usr", "share", "doc", "python3.11", "html")
    skip = re.compile(r"^(_static|_sources|_images)/|(^|/)(genindex[^/]*|search|py-modindex)\.html$")
    for p in files_under(top, lambda r: r.endswith(".html") and not skip.search(r)):
        t = html_text(p, lambda tag, a: attr_has(a, "role", "main"), ("headerlink",))
        yield "python/" + os.path.relpath(p, top), t


def src_linux(pk):
    """The Linux 6.1 kernel documentation: Documentation/**/*.rst and
    *.txt as plain text (reStructuredText markup left as written); not
    translations/ (other languages)."""
    top = os.path.join(pk, "linux-doc-6.1", "usr", "share", "doc", "linux-doc-6.1", "Documentation")
    for p in files_under(top, lambda r: re.search(r"\.(rst|txt)\.gz$", r) and not r.startswith("translations/")):
        yield "linux/" + os.path.relpath(p, top)[:-3], read(p)


def src_perl(pk):
    """The Perl 5.36 manual: perl-doc's pod/*.pod as plain text (POD markup
    left as written)."""
    top = os.path.join(pk, "perl-doc", "usr", "share", "perl", "5.36.0", "pod")
    for p in files_under(top, lambda r: r.endswith(".pod")):
        yield "perl/" + os.path.basename(p), read(p)


def src_debian_reference(pk):
    """The Debian Reference (English HTML, DocBook): each chapter's text
    without the navigation header and footer."""
    top = os.path.join(pk, "debian-reference-en", "usr", "share", "debian-reference")
    for p in files_under(top, lambda r: r.endswith(".en.html")):
        yield "debian-reference/" + os.path.basename(p), html_text(
            p, lambda tag, a: tag == "body", ("navheader", "navfooter", "toc"))


def src_debian_handbook(pk):
    """The Debian Administrator's Handbook (en-US HTML, Publican): each
    page's text without navigation and the table of contents."""
    top = os.path.join(pk, "debian-handbook", "usr", "share", "doc", "debian-handbook", "html", "en-US")
    for p in files_under(top, lambda r: r.endswith(".html") and "/" not in r):
        yield "debian-handbook/" + os.path.basename(p), html_text(
            p, lambda tag, a: tag == "body", ("navheader", "navfooter", "toc", "docnav",
                                              "breadcrumbs", "legalnotice"), ("banner",))


def src_gnu_standards(pk):
    """The GNU Coding Standards and Information for Maintainers of GNU
    Software (gnu-standards' plain text)."""
    top = os.path.join(pk, "gnu-standards", "usr", "share", "doc", "gnu-standards")
    for n in ("standards", "maintain"):
        yield "gnu-standards/" + n, read(os.path.join(top, n + ".text.gz"))


def dict_text(path):
    """A dictd database (.dict.dz, gzip-compatible) as text, without its
    00-database-* header entries (the lines up to the first line that is
    not one of them or indented)."""
    lines = read(path).split("\n")
    i = 0
    while i < len(lines) and (lines[i].startswith("00-database") or lines[i].startswith(" ")
                              or lines[i].startswith("http") or not lines[i].strip()):
        i += 1
    return "\n".join(lines[i:])


def src_rust(pk):
    """The Rust books of rust-doc 1.63 (mdBook HTML): The Rust Programming
    Language, the Reference, the Rustonomicon, Rust by Example, the
    Edition Guide, the Embedded Book, the rustc book and the Unstable Book;
    the <main> element of each page; not print.html (every page again),
    nor the stubs left of the book's old editions. Not the API pages."""
    top = os.path.join(pk, "rust-doc", "usr", "share", "doc", "rust-doc", "html")
    books = ("book", "reference", "nomicon", "rust-by-example", "edition-guide", "embedded-book",
             "rustc", "unstable-book")
    old = re.compile(r"^book/(first|second|2018)-edition/")
    for b in books:  # the folders scripts/fetch-corpus.sh extracts
        for p in files_under(os.path.join(top, b), lambda r: r.endswith(".html") and
                             os.path.basename(r) not in ("print.html", "404.html", "toc.html")):
            r = os.path.relpath(p, top)
            if not old.match(r):
                yield "rust/" + r, html_text(p, lambda tag, a: tag == "main")


def src_gcide(pk):
    """GCIDE, the Collaborative International Dictionary of English
    (Webster's 1913 with additions; dict-gcide), one document per initial
    letter (a letter's first entry is the letter itself, "B \\B\\ ..."; the
    preamble and the entries of digits go with A), without the lines that
    only name an entry's source ("[1913 Webster]", "[WordNet 1.5]",
    "[PJC]")."""
    text = dict_text(os.path.join(pk, "dict-gcide", "usr", "share", "dictd", "gcide.dict.dz"))
    src = re.compile(r"^\s*\[[^\]]*(Webster|WordNet|PJC)[^\]]*\]\s*$")
    head = re.compile(r"^([A-Z]) \\\1\\")
    docs, letter = {"A": []}, "A"
    for ln in text.split("\n"):
        if src.match(ln):
            continue
        m = head.match(ln)
        if m and m.group(1) > letter:
            letter = m.group(1)
            docs[letter] = []
        docs[letter].append(ln)
    if len(docs) != 26:
        raise SystemExit("build_corpus: gcide: %d initial letters, expected 26" % len(docs))
    for k in sorted(docs):
        yield "gcide/" + k, "\n".join(docs[k])


def src_foldoc(pk):
    """FOLDOC, the Free On-line Dictionary of Computing (dict-foldoc)."""
    yield "foldoc/foldoc", dict_text(os.path.join(pk, "dict-foldoc", "usr", "share", "dictd",
                                                  "foldoc.dict.dz"))


def src_devil(pk):
    """The Devil's Dictionary of Ambrose Bierce (dict-devil)."""
    yield "devil/devil", read(os.path.join(pk, "dict-devil", "usr", "share", "dictd", "devil.dict.dz"))


SOURCES = [
    ("bible", src_bible),
    ("fortunes", src_fortunes),
    ("jargon", src_jargon),
    ("python", src_python),
    ("linux", src_linux),
    ("perl", src_perl),
    ("debian-reference", src_debian_reference),
    ("debian-handbook", src_debian_handbook),
    ("gnu-standards", src_gnu_standards),
    ("rust", src_rust),
    ("foldoc", src_foldoc),
    ("gcide", src_gcide),
    ("devil", src_devil),
]


# ---------------------------------------------------------------- split and write

def h(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def split_heldout(docs):
    """docs: [(id, text)] of one source -> set of held-out ids."""
    total = sum(len(t.encode("utf-8")) for _, t in docs)
    held, size = set(), 0
    if len(docs) < 2:
        return held
    for i, t in sorted(docs, key=lambda d: h(d[0])):
        n = len(t.encode("utf-8"))
        if size + n <= HELDOUT_FRAC * total:
            held.add(i)
            size += n
    return held


def moby_grams(path):
    words = re.findall(r"[a-z]+", read(path).lower())
    return {" ".join(words[i:i + MOBY_WORDS]) for i in range(len(words) - MOBY_WORDS + 1)}


def moby_lines(text, grams):
    """Indices of the lines of text that hold a word of a run of MOBY_WORDS
    consecutive words (letters only, case folded) that moby-dick has."""
    ms = list(re.finditer(r"[a-z]+", text.lower()))
    w = [m.group() for m in ms]
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"] if ms else []
    hit = set()
    for k in range(len(w) - MOBY_WORDS + 1):
        if " ".join(w[k:k + MOBY_WORDS]) in grams:
            a, b = ms[k].start(), ms[k + MOBY_WORDS - 1].end()
            hit.update(range(bisect.bisect_right(starts, a) - 1, bisect.bisect_right(starts, b - 1)))
    return hit


def moby_filter(train, grams):
    """Drop the lines of the training documents that share a run of
    MOBY_WORDS words with moby-dick (in the King James Bible: verses that
    Moby-Dick quotes). Returns (docs, [(id, dropped line)])."""
    out, dropped = [], []
    for src, i, t in train:
        hit = moby_lines(t, grams)
        if hit:
            lines = t.split("\n")
            dropped += [(i, lines[k]) for k in sorted(hit)]
            t = clean("\n".join(ln for k, ln in enumerate(lines) if k not in hit))
            if moby_lines(t, grams):
                raise SystemExit("build_corpus: %s still shares words with moby-dick" % i)
        out.append((src, i, t))
    return out, dropped


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pkgs", required=True, help="folder of extracted packages")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--moby", help="data/moby-dick.txt: keep it out of train.txt")
    a = ap.parse_args()

    train, held, seen = [], [], set()
    for name, fn in SOURCES:
        docs = []
        for i, t in fn(a.pkgs):
            t = clean(t)
            if t and h(t) not in seen:  # empty pages and pages seen before are left out
                seen.add(h(t))
                docs.append((i, t))
        out = split_heldout(docs)
        for i, t in docs:
            (held if i in out else train).append((name, i, t))
        nb = sum(len(t.encode("utf-8")) for _, t in docs)
        nh = sum(len(t.encode("utf-8")) for i, t in docs if i in out)
        print("%-17s %5d documents %11d bytes, held out %3d documents %9d bytes" %
              (name, len(docs), nb, len(out), nh), file=sys.stderr)
    if a.moby:
        train, dropped = moby_filter(train, moby_grams(a.moby))
        print("moby-dick: %d lines of the training part share %d consecutive words with it, dropped"
              % (len(dropped), MOBY_WORDS), file=sys.stderr)
        for i, ln in dropped:
            print("  %s: %s" % (i, ln[:100]), file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    manifest = []
    for split, docs in (("train", train), ("heldout", held)):
        docs = sorted(docs, key=lambda d: h(d[1]))
        path = os.path.join(a.out, split + ".txt")
        with open(path + ".tmp", "wb") as f:
            f.write("\n\n".join(t for _, _, t in docs).encode("utf-8") + b"\n")
        os.replace(path + ".tmp", path)
        manifest += ["%s\t%s\t%s\t%d" % (s, i, split, len(t.encode("utf-8"))) for s, i, t in docs]
    with open(os.path.join(a.out, "manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("source\tdocument\tsplit\tbytes\n" + "\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
