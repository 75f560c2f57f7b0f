package text

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CLIP's text clean-up, as OpenAI's simple_tokenizer.py does it before BPE:
//
//	whitespace_clean(basic_clean(text)).lower()
//	basic_clean(t) = html.unescape(html.unescape(ftfy.fix_text(t))).strip()
//	whitespace_clean(t) = re.sub(r'\s+', ' ', t).strip()
//
// then the pre-tokenisation regex splits the result into pieces. Every step
// is reproduced here to the character, with Python's own semantics (str.strip
// and str.lower, the regex module's \s, \p{L} and \p{N} under IGNORECASE,
// html.unescape's numeric and legacy rules), except two parts of ftfy that
// need data the standard library does not carry:
//
//   - fix_encoding, ftfy's heuristic repair of mojibake ("cafÃ©" → "café"):
//     skipped, so such text keeps its mojibake;
//   - NFC normalisation: skipped, so decomposed accents ("e" + U+0301) and
//     halfwidth katakana with voiced marks are not composed.
//
// Every other ftfy fix, all table-driven, is applied as ftfy 6 applies it,
// line by line and repeated until nothing changes: HTML entities (unless the
// line holds a '<'), C1 controls read as Windows-1252, Latin ligatures,
// halfwidth/fullwidth forms, curly quotes, line breaks, ANSI terminal escapes
// and invisible control characters. (Go strings hold no UTF-16 surrogates, so
// fix_surrogates has nothing to do; bytes that are not UTF-8 read as U+FFFD.)
//
// This matches OpenAI's clip.tokenize. Hugging Face's CLIPTokenizer differs on
// rare text only: with ftfy installed it skips the two html.unescape calls
// (so legacy entities such as "&amp" without ';' stay); without ftfy it
// swaps fix_text for BERT's BasicTokenizer (NFC, control characters dropped,
// CJK ideographs split apart). On plain captions all of them agree.

// maxFixPasses bounds ftfy's repeat-until-unchanged loop; only text escaped
// more than this many times over (&amp;amp;…) is left part-escaped.
const maxFixPasses = 32

// clipClean is whitespace_clean(basic_clean(s)).lower() as above.
func clipClean(s string) string {
	s = validRunes(s)
	s = ftfyFix(s)
	s = pyUnescape(pyUnescape(s))
	s = pyStrip(s)
	s = collapseSpace(s)
	return pyLower(pyStrip(s))
}

// validRunes replaces each byte that is not part of valid UTF-8 with U+FFFD.
func validRunes(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// ftfyFix is ftfy.fix_text without fix_encoding and NFC: each line (with its
// '\n') is fixed on its own; once a line holds '<', entities are left alone
// in it and in every later line (ftfy's unescape_html="auto").
func ftfyFix(s string) string {
	var out strings.Builder
	unescape := true
	for len(s) > 0 {
		n := strings.IndexByte(s, '\n') + 1
		if n == 0 {
			n = len(s)
		}
		seg := s[:n]
		s = s[n:]
		if strings.Contains(seg, "<") {
			unescape = false
		}
		for pass := 0; pass < maxFixPasses; pass++ {
			orig := seg
			if unescape {
				seg = ftfyUnescape(seg)
			}
			seg = ftfyChars(seg)
			seg = ftfyLineBreaks(seg)
			seg = removeANSI(seg)
			seg = mapRunes(seg, ftfyControl)
			if seg == orig {
				break
			}
		}
		out.WriteString(seg)
	}
	return out.String()
}

// mapRunes rewrites s rune by rune; f returns the replacement and whether it
// replaces r at all.
func mapRunes(s string, f func(r rune) (string, bool)) string {
	for i, r := range s {
		if _, ok := f(r); !ok {
			continue
		}
		var b strings.Builder
		b.WriteString(s[:i])
		for _, r := range s[i:] {
			if rep, ok := f(r); ok {
				b.WriteString(rep)
			} else {
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	return s
}

// ftfyChars applies fix_c1_controls, fix_latin_ligatures,
// fix_character_width and uncurl_quotes, in ftfy's order, each over the
// output of the one before (a C1 0x92 becomes ’, then ').
func ftfyChars(s string) string {
	s = mapRunes(s, func(r rune) (string, bool) {
		c, ok := ftfyC1[r]
		return string(c), ok
	})
	s = mapRunes(s, func(r rune) (string, bool) {
		l, ok := ftfyLigatures[r]
		return l, ok
	})
	s = mapRunes(s, func(r rune) (string, bool) {
		w, ok := ftfyWidth[r]
		return w, ok
	})
	return mapRunes(s, func(r rune) (string, bool) {
		switch {
		case r == 0x02BC || r >= 0x2018 && r <= 0x201B:
			return "'", true
		case r >= 0x201C && r <= 0x201F:
			return `"`, true
		}
		return "", false
	})
}

// ftfyLigatures is ftfy's fix_latin_ligatures table.
var ftfyLigatures = map[rune]string{
	'Ĳ': "IJ", 'ĳ': "ij", 'ŉ': "ʼn", 'Ǳ': "DZ", 'ǲ': "Dz", 'ǳ': "dz", 'Ǆ': "DŽ", 'ǅ': "Dž", 'ǆ': "dž",
	'Ǉ': "LJ", 'ǈ': "Lj", 'ǉ': "lj", 'Ǌ': "NJ", 'ǋ': "Nj", 'ǌ': "nj",
	'ﬀ': "ff", 'ﬁ': "fi", 'ﬂ': "fl", 'ﬃ': "ffi", 'ﬄ': "ffl", 'ﬅ': "ſt", 'ﬆ': "st",
}

// ftfyControl is ftfy's remove_control_chars: C0 controls other than
// \t \n \f \r, DEL, the deprecated Arabic format controls, the BOM and the
// interlinear annotation characters vanish.
func ftfyControl(r rune) (string, bool) {
	switch {
	case r <= 0x08, r == 0x0B, r >= 0x0E && r <= 0x1F, r == 0x7F,
		r >= 0x206A && r <= 0x206F, r == 0xFEFF, r >= 0xFFF9 && r <= 0xFFFC:
		return "", true
	}
	return "", false
}

// ftfyLineBreaks is fix_line_breaks: \r\n, \r, U+2028, U+2029, U+0085 → \n.
func ftfyLineBreaks(s string) string {
	if !strings.ContainsAny(s, "\r\u2028\u2029\u0085") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.NewReplacer("\r", "\n", "\u2028", "\n", "\u2029", "\n", "\u0085", "\n").Replace(s)
}

// removeANSI is remove_terminal_escapes: ESC [ (digits|;)* letter vanishes
// (Python's \d: any decimal digit).
func removeANSI(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "\x1b[") {
			j := i + 2
			for j < len(s) {
				r, n := utf8.DecodeRuneInString(s[j:])
				if r != ';' && !unicode.IsDigit(r) {
					break
				}
				j += n
			}
			if j < len(s) && isASCIILetter(s[j]) {
				i = j + 1
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isASCIIAlnum(c byte) bool  { return isASCIILetter(c) || '0' <= c && c <= '9' }

// ftfyUnescape is ftfy's unescape_html: only "&name;" or "&#…;" with 1–24
// ASCII letters and digits is touched. A name from HTML5's table decodes; so
// does the all-capitals spelling of a lower-case name (&EACUTE; → É) when
// that spelling is not itself an entity; a character reference decodes when
// html.unescape consumes all of it.
func ftfyUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '&' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i + 1
		if j < len(s) && s[j] == '#' {
			j++
		}
		k := j
		for k < len(s) && isASCIIAlnum(s[k]) {
			k++
		}
		if k == j || k-j > 24 || k >= len(s) || s[k] != ';' {
			b.WriteByte('&')
			i++
			continue
		}
		m := s[i : k+1]
		b.WriteString(ftfyEntity(m))
		i = k + 1
	}
	return b.String()
}

func ftfyEntity(m string) string {
	if strings.HasPrefix(m, "&#") {
		if u := pyUnescape(m); !strings.Contains(u, ";") {
			return u
		}
		return m
	}
	if v, ok := html5Entity(m); ok {
		return v
	}
	name := m[1 : len(m)-1]
	low := strings.ToLower(name)
	if name == strings.ToUpper(low) && name != low {
		if v, ok := html5Entity("&" + low + ";"); ok && pyUnescape(m) == m {
			return pyUpper(v)
		}
	}
	return m
}

// html5Entity looks up "&name;" (name ASCII letters and digits) in HTML5's
// table of named references.
func html5Entity(m string) (string, bool) {
	u := unescapeNamed(m)
	// Go decodes the whole reference, or a legacy prefix (&notit; → ¬it;)
	// whose leftover still ends in ';'. Only &semi; decodes to ";" alone.
	if u == m || strings.HasSuffix(u, ";") && u != ";" {
		return "", false
	}
	return u, true
}

// pyUnescape is Python's html.unescape.
func pyUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '&' {
			b.WriteByte(s[i])
			i++
			continue
		}
		rep, n := pyCharref(s[i:])
		if n == 0 {
			b.WriteByte('&')
			i++
			continue
		}
		b.WriteString(rep)
		i += n
	}
	return b.String()
}

// pyCharref decodes the reference at the start of s ("&…") and returns its
// replacement and length, or n = 0 where Python's pattern
// &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?) does not match.
func pyCharref(s string) (string, int) {
	if len(s) > 1 && s[1] == '#' {
		base, j := 10, 2
		if len(s) > 2 && (s[2] == 'x' || s[2] == 'X') {
			base, j = 16, 3
		}
		k := j
		num := 0
		for k < len(s) && digitVal(s[k], base) >= 0 {
			num = min(num*base+digitVal(s[k], base), 0x110000) // past U+10FFFF all is one
			k++
		}
		if k == j {
			return "", 0
		}
		if k < len(s) && s[k] == ';' {
			k++
		}
		return pyCodepoint(num), k
	}
	// Named: up to 32 characters outside \t \n \f space < & # ;, then an
	// optional ';'. HTML5's longest-prefix rule for legacy names (&notit →
	// ¬it) is Go's too, and no name holds a character outside [A-Za-z0-9;],
	// so Go's decoder gives Python's answer on exactly this span.
	j, n := 1, 0
	for j < len(s) && n < 32 {
		r, w := utf8.DecodeRuneInString(s[j:])
		if r == '\t' || r == '\n' || r == '\f' || r == ' ' || r == '<' || r == '&' || r == '#' || r == ';' {
			break
		}
		j += w
		n++
	}
	if n == 0 {
		return "", 0
	}
	if j < len(s) && s[j] == ';' {
		j++
	}
	return unescapeNamed(s[:j]), j
}

// unescapeNamed decodes one named reference with Go's HTML5 table, which
// leaves out the two entities whose value is longer than their name.
func unescapeNamed(ref string) string {
	switch ref {
	case "&nLt;":
		return "\u226A\u20D2"
	case "&nGt;":
		return "\u226B\u20D2"
	}
	return html.UnescapeString(ref)
}

func digitVal(c byte, base int) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case base == 16 && 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case base == 16 && 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// pyCodepoint is html.unescape's reading of a numeric reference.
func pyCodepoint(n int) string {
	switch {
	case n == 0:
		return "\uFFFD"
	case n == 0x0D:
		return "\r"
	case n >= 0x80 && n <= 0x9F:
		if c, ok := ftfyC1[rune(n)]; ok {
			return string(c)
		}
		return string(rune(n)) // 0x81, 0x8D, 0x8F, 0x90, 0x9D stay
	case n >= 0xD800 && n <= 0xDFFF, n > 0x10FFFF:
		return "\uFFFD"
	case n >= 0x01 && n <= 0x08, n == 0x0B, n >= 0x0E && n <= 0x1F, n == 0x7F,
		n >= 0xFDD0 && n <= 0xFDEF, n&0xFFFE == 0xFFFE:
		return ""
	}
	return string(rune(n))
}

// pyUpper is Python's str.upper().
func pyUpper(s string) string {
	var b strings.Builder
	for _, r := range s {
		if u, ok := pyUpperMulti[r]; ok {
			b.WriteString(u)
		} else {
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}

// pySpace is Python's str.isspace(): the regex module's \s (Go's
// unicode.IsSpace) and the four information separators U+001C–U+001F.
func pySpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1C && r <= 0x1F }

// pyStrip is Python's str.strip().
func pyStrip(s string) string { return strings.TrimFunc(s, pySpace) }

// collapseSpace is re.sub(r'\s+', ' ', s) with the regex module's Unicode \s.
func collapseSpace(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	if space {
		b.WriteByte(' ')
	}
	return b.String()
}

// pyLower is Python's str.lower(): Go's per-character mapping except İ
// (U+0130 → "i̇", two characters) and capital sigma, which becomes final ς
// after a cased letter (skipping case-ignorable characters) when no cased
// letter follows (again skipping case-ignorable ones).
func pyLower(s string) string {
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		switch r {
		case 0x0130:
			b.WriteString("i\u0307")
		case 'Σ':
			if finalSigma(rs, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !cased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && caseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !cased(rs[j])
}

// cased is Unicode's Cased property.
func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable is Unicode's Case_Ignorable property: Mn, Me, Cf, Lm, Sk and
// the Word_Break MidLetter, MidNumLet and Single_Quote characters.
func caseIgnorable(r rune) bool {
	switch r {
	case 0x27, 0x2E, 0x3A, 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// clipPieces splits cleaned text as CLIP's pattern (regex module,
// IGNORECASE) does:
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// calling yield on each piece until it returns false. Under IGNORECASE 's'
// also matches 'ſ' (U+017F), and U+0345 (which folds to the letter ι) matches
// none of the classes, so it is dropped like white space.
func clipPieces(s string, yield func(piece string) bool) {
	for i := 0; i < len(s); {
		if n := clipSpecialAt(s[i:]); n > 0 {
			if !yield(s[i : i+n]) {
				return
			}
			i += n
			continue
		}
		if n := contractionAt(s[i:]); n > 0 {
			if !yield(s[i : i+n]) {
				return
			}
			i += n
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		var j int
		switch {
		case unicode.IsSpace(r) || r == 0x345:
			i += n
			continue
		case unicode.IsLetter(r):
			j = i + n
			for j < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[j:])
				if !unicode.IsLetter(r2) {
					break
				}
				j += n2
			}
		case unicode.IsNumber(r):
			j = i + n
		default:
			j = i + n
			for j < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[j:])
				if unicode.IsSpace(r2) || unicode.IsLetter(r2) || unicode.IsNumber(r2) || r2 == 0x345 {
					break
				}
				j += n2
			}
		}
		if !yield(s[i:j]) {
			return
		}
		i = j
	}
}

const (
	clipSOT = "<|startoftext|>"
	clipEOT = "<|endoftext|>"
)

// clipSpecialAt is the length of <|startoftext|> or <|endoftext|> at the
// start of s (case-insensitively: any 's' may be 'ſ'), or 0.
func clipSpecialAt(s string) int {
	if len(s) < len(clipEOT) || s[0] != '<' {
		return 0
	}
	for _, p := range []string{clipSOT, clipEOT} {
		if n := foldPrefix(s, p); n > 0 {
			return n
		}
	}
	return 0
}

// contractionAt is the length of 's 't 're 've 'm 'll 'd at the start of s, or 0.
func contractionAt(s string) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	for _, p := range []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} {
		if n := foldPrefix(s, p); n > 0 {
			return n
		}
	}
	return 0
}

// foldPrefix matches lower-case ASCII p at the start of s, letting 'ſ' stand
// for 's' (the only simple case folding onto these letters that survives
// lower-casing), and returns the bytes of s matched, or 0.
func foldPrefix(s, p string) int {
	j := 0
	for i := 0; i < len(p); i++ {
		if j < len(s) && s[j] == p[i] {
			j++
			continue
		}
		if p[i] == 's' && strings.HasPrefix(s[j:], "ſ") {
			j += len("ſ")
			continue
		}
		return 0
	}
	return j
}
