package text

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"ddgi/torch"
)

// CLIPTokenizer is CLIP's byte-level BPE (Stable Diffusion 1.5's text
// tokenizer), read from Hugging Face's vocab.json + merges.txt or from
// OpenAI's bpe_simple_vocab_16e6.txt.gz, and reproducing OpenAI's
// simple_tokenizer.py id for id (see clipClean for the one part of ftfy it
// leaves out).
type CLIPTokenizer struct {
	source string
	vocab  map[string]int64 // token → id
	tokens []string         // id → token ("" where no token has the id)
	sp     Specials
	unk    int64 // what a BPE symbol missing from vocab.json becomes (HF's rule)
	maxLen int   // the tokenizer's model_max_length (77)

	symID   []int64            // BPE symbol → vocab id (unk when absent)
	symTok  []string           // BPE symbol → its string
	ranks   map[[2]int32]merge // symbol pair → its merge
	byteSym [256]int32         // byte → the symbol of its character
	byteEnd [256]int32         // byte → its character + "</w>"
	sotID   int64              // vocab ids of <|startoftext|> and
	eotID   int64              // <|endoftext|> when the text spells them

	mu    sync.Mutex
	cache map[string][]int64 // piece → ids
}

type merge struct{ rank, out int32 }

const (
	// clipMerges is how many merges CLIP reads (49152 − 256 − 2 lines after
	// the header): OpenAI's and Hugging Face's loaders both cut there.
	clipMerges = 49152 - 256 - 2
	// clipContext is CLIP's context length.
	clipContext = 77
	// MaxCLIPInput caps the bytes of one text that the CLIP tokenizer reads:
	// the rest is ignored (cut at a character boundary). EncodeBatch stops
	// once a row is full, so rows are exact for any text whose first
	// context-length tokens lie in this span, which is every real caption.
	MaxCLIPInput = 64 << 10
	// maxCachedPiece bounds the pieces kept in the cache (junk words are not).
	maxCachedPiece = 64
)

var errNotCLIP = errors.New("not a CLIP tokenizer")

// bytesToUnicode is CLIP's bytes_to_unicode: printable Latin-1 bytes stand
// for themselves, the other 68 bytes for U+0100 onwards, in byte order.
func bytesToUnicode() [256]rune {
	var t [256]rune
	n := 0
	for b := 0; b < 256; b++ {
		if '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF {
			t[b] = rune(b)
		} else {
			t[b] = rune(256 + n)
			n++
		}
	}
	return t
}

// clipByteDecoder inverts bytesToUnicode.
var clipByteDecoder = sync.OnceValue(func() map[rune]byte {
	dec := map[rune]byte{}
	for b, r := range bytesToUnicode() {
		dec[r] = byte(b)
	}
	return dec
})

// byteOrder lists bytes in bytes_to_unicode's order: the printable ones
// first, as vocab ids 0–255 take them.
func byteOrder() []int {
	var printable, rest []int
	for b := 0; b < 256; b++ {
		if '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF {
			printable = append(printable, b)
		} else {
			rest = append(rest, b)
		}
	}
	return append(printable, rest...)
}

// LoadCLIP reads a CLIP tokenizer: a folder with vocab.json and merges.txt
// (a diffusers model folder's tokenizer/ subfolder is found too), or
// OpenAI's bpe_simple_vocab_16e6.txt.gz. A folder's special_tokens_map.json
// or tokenizer_config.json names its padding token (SD 1.5: <|endoftext|>,
// id 49407); without them a folder pads with <|endoftext|> (Hugging Face's
// default), and OpenAI's file pads with id 0 (clip.tokenize's zeros).
func LoadCLIP(path string) (*CLIPTokenizer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load CLIP tokenizer: %w", err)
	}
	var t *CLIPTokenizer
	if fi.IsDir() {
		t, err = loadCLIPFolder(path)
	} else {
		t, err = loadCLIPGz(path)
	}
	if err != nil {
		return nil, fmt.Errorf("load CLIP tokenizer %s: %w", path, err)
	}
	return t, nil
}

func clipFolder(dir string) (string, bool) {
	for _, d := range []string{dir, filepath.Join(dir, "tokenizer")} {
		if isFile(filepath.Join(d, "vocab.json")) && isFile(filepath.Join(d, "merges.txt")) {
			return d, true
		}
	}
	return "", false
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func loadCLIPFolder(dir string) (*CLIPTokenizer, error) {
	d, ok := clipFolder(dir)
	if !ok {
		return nil, fmt.Errorf("%w: no vocab.json and merges.txt in the folder or its tokenizer/", errNotCLIP)
	}
	vb, err := os.ReadFile(filepath.Join(d, "vocab.json"))
	if err != nil {
		return nil, err
	}
	var vocab map[string]int64
	if err := json.Unmarshal(vb, &vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	mb, err := os.ReadFile(filepath.Join(d, "merges.txt"))
	if err != nil {
		return nil, err
	}
	// HF: read().strip().split("\n")[1:49152-256-2+1], each line split on white space.
	lines := strings.Split(pyStrip(string(mb)), "\n")
	merges := mergeFields(lines)
	t, err := newCLIP(d, vocab, merges)
	if err != nil {
		return nil, err
	}
	cfg, err := readSpecialTokens(d)
	if err != nil {
		return nil, err
	}
	for _, s := range []struct {
		name string
		dst  *int64
	}{{cfg.BOS, &t.sp.BOS}, {cfg.EOS, &t.sp.EOS}, {cfg.Pad, &t.sp.Pad}, {cfg.Unk, &t.unk}} {
		if s.name == "" {
			continue
		}
		id, ok := t.vocab[s.name]
		if !ok {
			id, ok = cfg.added[s.name]
		}
		if !ok {
			return nil, fmt.Errorf("special token %q is not in vocab.json", s.name)
		}
		*s.dst = id
	}
	if cfg.MaxLen > 0 {
		t.maxLen = cfg.MaxLen
	}
	return t, nil
}

// mergeFields splits merge lines on white space (str.split()), skipping
// the header line and keeping at most clipMerges.
func mergeFields(lines []string) [][]string {
	if len(lines) > 0 {
		lines = lines[1:]
	}
	if len(lines) > clipMerges {
		lines = lines[:clipMerges]
	}
	out := make([][]string, len(lines))
	for i, l := range lines {
		out[i] = strings.FieldsFunc(l, pySpace)
	}
	return out
}

// specialTokens are the names a folder's configuration gives its specials.
type specialTokens struct {
	BOS, EOS, Pad, Unk string
	MaxLen             int
	added              map[string]int64 // added_tokens_decoder: content → id
}

// readSpecialTokens reads tokenizer_config.json, then special_tokens_map.json
// over it (Hugging Face's precedence). A token is a string or an object with
// "content".
func readSpecialTokens(dir string) (specialTokens, error) {
	st := specialTokens{added: map[string]int64{}}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return st, err
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return st, fmt.Errorf("%s: %w", name, err)
		}
		for key, dst := range map[string]*string{"bos_token": &st.BOS, "eos_token": &st.EOS, "pad_token": &st.Pad, "unk_token": &st.Unk} {
			if v, ok := raw[key]; ok {
				s, err := tokenContent(v)
				if err != nil {
					return st, fmt.Errorf("%s: %s: %w", name, key, err)
				}
				if s != "" {
					*dst = s
				}
			}
		}
		if v, ok := raw["model_max_length"]; ok {
			var f float64
			if json.Unmarshal(v, &f) == nil && f >= 2 && f <= 1<<20 {
				st.MaxLen = int(f)
			}
		}
		if v, ok := raw["added_tokens_decoder"]; ok {
			var dec map[string]struct {
				Content string `json:"content"`
			}
			if json.Unmarshal(v, &dec) == nil {
				for k, a := range dec {
					if id, err := strconv.ParseInt(k, 10, 64); err == nil && id >= 0 {
						st.added[a.Content] = id
					}
				}
			}
		}
	}
	return st, nil
}

func tokenContent(v json.RawMessage) (string, error) {
	if string(v) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return s, nil
	}
	var o struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(v, &o); err != nil {
		return "", fmt.Errorf("want a string or {\"content\": …}")
	}
	return o.Content, nil
}

func loadCLIPGz(path string) (*CLIPTokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotCLIP, err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("merges are not UTF-8")
	}
	// OpenAI: read().decode("utf-8").split('\n')[1:49152-256-2+1]; the
	// vocabulary is the 256 byte characters, the same with </w>, each merge
	// joined, then <|startoftext|> and <|endoftext|>.
	merges := mergeFields(strings.Split(string(b), "\n"))
	bu := bytesToUnicode()
	var list []string
	for _, b := range byteOrder() {
		list = append(list, string(bu[b]))
	}
	for _, b := range byteOrder() {
		list = append(list, string(bu[b])+"</w>")
	}
	for _, m := range merges {
		list = append(list, strings.Join(m, ""))
	}
	list = append(list, clipSOT, clipEOT)
	vocab := make(map[string]int64, len(list))
	for i, s := range list {
		vocab[s] = int64(i) // a later duplicate wins, as dict(zip(vocab, range)) has it
	}
	t, err := newCLIP(path, vocab, merges)
	if err != nil {
		return nil, err
	}
	t.tokens = list
	t.sp.Pad = 0
	return t, nil
}

// newCLIP builds the BPE tables. Specials default to <|startoftext|>,
// <|endoftext|>, pad and unk <|endoftext|> (Hugging Face's CLIPTokenizer).
func newCLIP(source string, vocab map[string]int64, merges [][]string) (*CLIPTokenizer, error) {
	t := &CLIPTokenizer{source: source, vocab: vocab, ranks: map[[2]int32]merge{}, cache: map[string][]int64{}, maxLen: clipContext}
	n := int64(0)
	for _, id := range vocab {
		if id < 0 || id > 1<<24 {
			return nil, fmt.Errorf("vocab id %d out of range", id)
		}
		n = max(n, id+1)
	}
	t.tokens = make([]string, n)
	keys := make([]string, 0, len(vocab))
	for k := range vocab {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic when two tokens share an id
	for _, k := range keys {
		t.tokens[vocab[k]] = k
	}
	var ok1, ok2 bool
	if t.sotID, ok1 = vocab[clipSOT]; !ok1 {
		return nil, fmt.Errorf("%s is not in the vocabulary", clipSOT)
	}
	if t.eotID, ok2 = vocab[clipEOT]; !ok2 {
		return nil, fmt.Errorf("%s is not in the vocabulary", clipEOT)
	}
	t.sp = Specials{BOS: t.sotID, EOS: t.eotID, Pad: t.eotID}
	t.unk = t.eotID

	syms := map[string]int32{}
	intern := func(s string) int32 {
		if id, ok := syms[s]; ok {
			return id
		}
		id := int32(len(t.symTok))
		syms[s] = id
		t.symTok = append(t.symTok, s)
		return id
	}
	bu := bytesToUnicode()
	for b := 0; b < 256; b++ {
		t.byteSym[b] = intern(string(bu[b]))
		t.byteEnd[b] = intern(string(bu[b]) + "</w>")
	}
	for r, m := range merges {
		if len(m) != 2 {
			continue // a malformed line never matches a pair, as in Python
		}
		a, b := intern(m[0]), intern(m[1])
		t.ranks[[2]int32{a, b}] = merge{rank: int32(r), out: intern(m[0] + m[1])} // a repeat takes the later rank
	}
	t.symID = make([]int64, len(t.symTok))
	for i, s := range t.symTok {
		id, ok := vocab[s]
		if !ok {
			id = -1 // resolved to unk on use: the folder may name another unk
		}
		t.symID[i] = id
	}
	return t, nil
}

// Source is the file or folder the tokenizer was read from.
func (t *CLIPTokenizer) Source() string { return t.source }

// Specials are <|startoftext|>, <|endoftext|> and the padding id.
func (t *CLIPTokenizer) Specials() Specials { return t.sp }

// ContextLength is the tokenizer's model_max_length (77 for CLIP).
func (t *CLIPTokenizer) ContextLength() int { return t.maxLen }

// VocabSize is one past the largest id (49,408 for CLIP).
func (t *CLIPTokenizer) VocabSize() int { return len(t.tokens) }

// SetPad makes token (a vocabulary entry: "<|endoftext|>" as SD 1.5's
// Hugging Face tokenizer pads, "!" for id 0 as OpenAI's clip.tokenize)
// the padding token. Call it before the tokenizer is shared.
func (t *CLIPTokenizer) SetPad(token string) error {
	id, ok := t.vocab[token]
	if !ok {
		return fmt.Errorf("pad token %q is not in the vocabulary", token)
	}
	t.sp.Pad = id
	return nil
}

// Token is id's vocabulary entry (byte-level characters, "</w>" ending a
// word), or "" for an id outside the vocabulary.
func (t *CLIPTokenizer) Token(id int64) string {
	if id < 0 || id >= int64(len(t.tokens)) {
		return ""
	}
	return t.tokens[id]
}

// Encode maps text to ids without <|startoftext|>/<|endoftext|> framing,
// as OpenAI's SimpleTokenizer.encode.
func (t *CLIPTokenizer) Encode(s string) []int64 { return t.encode(s, -1) }

// encode stops once limit ids are out (limit < 0: no limit).
func (t *CLIPTokenizer) encode(s string, limit int) []int64 {
	if len(s) > MaxCLIPInput {
		cut := MaxCLIPInput
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	var ids []int64
	clipPieces(clipClean(s), func(p string) bool {
		ids = append(ids, t.encodePiece(p)...)
		return limit < 0 || len(ids) < limit
	})
	if limit >= 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	return ids
}

func (t *CLIPTokenizer) encodePiece(p string) []int64 {
	if p == clipSOT {
		return []int64{t.sotID}
	}
	if p == clipEOT {
		return []int64{t.eotID}
	}
	if len(p) <= maxCachedPiece {
		t.mu.Lock()
		ids, ok := t.cache[p]
		t.mu.Unlock()
		if ok {
			return ids
		}
	}
	syms := t.bpe(p)
	ids := make([]int64, len(syms))
	for i, s := range syms {
		if ids[i] = t.symID[s]; ids[i] < 0 {
			ids[i] = t.unk
		}
	}
	if len(p) <= maxCachedPiece {
		t.mu.Lock()
		if len(t.cache) >= 100000 {
			clear(t.cache)
		}
		t.cache[p] = ids
		t.mu.Unlock()
	}
	return ids
}

// bpe merges the piece's byte characters, the last one ending in "</w>",
// exactly as simple_tokenizer.py's loop does: take the lowest-ranked
// adjacent pair, merge every occurrence of it left to right, repeat. A heap
// of candidate pairs makes that O(n log n) in the piece's length instead of
// quadratic; pairs formed during a pass wait for the next one.
func (t *CLIPTokenizer) bpe(p string) []int32 {
	n := len(p)
	if n == 0 {
		return nil
	}
	sym := make([]int32, n)
	for i := 0; i < n; i++ {
		sym[i] = t.byteSym[p[i]]
	}
	sym[n-1] = t.byteEnd[p[n-1]]
	if n == 1 {
		return sym
	}
	prev := make([]int, n)
	next := make([]int, n)
	for i := range sym {
		prev[i], next[i] = i-1, i+1
	}
	next[n-1] = -1
	alive := make([]bool, n)
	for i := range alive {
		alive[i] = true
	}
	var h pairHeap
	cands := func(i int, add func(cand)) {
		if j := next[i]; j >= 0 {
			if m, ok := t.ranks[[2]int32{sym[i], sym[j]}]; ok {
				add(cand{rank: m.rank, pos: i, a: sym[i], b: sym[j]})
			}
		}
	}
	for i := 0; i < n-1; i++ {
		cands(i, func(c cand) { h = append(h, c) })
	}
	heap.Init(&h)
	push := func(c cand) { heap.Push(&h, c) }
	var pass []cand
	var touched []int
	for h.Len() > 0 {
		r := h[0].rank
		pass = pass[:0]
		for h.Len() > 0 && h[0].rank == r {
			pass = append(pass, heap.Pop(&h).(cand))
		}
		sort.Slice(pass, func(x, y int) bool { return pass[x].pos < pass[y].pos })
		touched = touched[:0]
		for _, c := range pass {
			i := c.pos
			j := next[i]
			if !alive[i] || j < 0 || sym[i] != c.a || sym[j] != c.b {
				continue // stale: a neighbour merged first
			}
			sym[i] = t.ranks[[2]int32{c.a, c.b}].out
			alive[j] = false
			next[i] = next[j]
			if next[j] >= 0 {
				prev[next[j]] = i
			}
			touched = append(touched, i)
		}
		for _, i := range touched { // the pairs the pass made
			if prev[i] >= 0 {
				cands(prev[i], push)
			}
			cands(i, push)
		}
	}
	out := sym[:0:0]
	for i := 0; i >= 0; i = next[i] {
		out = append(out, sym[i])
	}
	return out
}

type cand struct {
	rank int32
	pos  int
	a, b int32
}

type pairHeap []cand

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	return h[i].rank < h[j].rank || h[i].rank == h[j].rank && h[i].pos < h[j].pos
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(cand)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// EncodeBatch builds a [B,ctx] int64 tensor: <|startoftext|> tokens
// <|endoftext|> then padding; text longer than ctx−2 tokens is cut, keeping
// <|endoftext|> last (clip.tokenize(truncate=True), HF truncation). Empty
// text is the empty prompt, as in both.
func (t *CLIPTokenizer) EncodeBatch(texts []string, ctx int) (*torch.Tensor, error) {
	if ctx < 2 {
		return nil, fmt.Errorf("tokenize: context length %d, want ≥ 2", ctx)
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("tokenize: no texts")
	}
	flat := make([]int64, 0, len(texts)*ctx)
	for _, s := range texts {
		flat = append(flat, frame(t.encode(s, ctx-2), ctx, t.sp)...)
	}
	var out *torch.Tensor
	err := torch.Try(func() { out = torch.FromInt64(flat, int64(len(texts)), int64(ctx)) })
	return out, err
}

// EmptyIDs is the empty prompt, <|startoftext|> <|endoftext|> padding…,
// for n rows.
func (t *CLIPTokenizer) EmptyIDs(n, ctx int) *torch.Tensor {
	flat := make([]int64, 0, n*ctx)
	for i := 0; i < n; i++ {
		flat = append(flat, frame(nil, ctx, t.sp)...)
	}
	return torch.FromInt64(flat, int64(n), int64(ctx))
}

// Decode is SimpleTokenizer.decode: the tokens' byte characters back to
// bytes (invalid UTF-8 as U+FFFD), "</w>" as a space. Specials and padding
// stay (id 0 is "!"); an id outside the vocabulary reads as U+FFFD.
func (t *CLIPTokenizer) Decode(ids []int64) string {
	dec := clipByteDecoder()
	var buf bytes.Buffer
	for _, id := range ids {
		if id < 0 || id >= int64(len(t.tokens)) {
			buf.WriteString("\uFFFD")
			continue
		}
		for _, r := range t.tokens[id] {
			if b, ok := dec[r]; ok {
				buf.WriteByte(b)
			} else {
				buf.WriteRune(r)
			}
		}
	}
	return strings.ReplaceAll(strings.ToValidUTF8(buf.String(), "\uFFFD"), "</w>", " ")
}
