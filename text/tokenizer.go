// Package text turns captions into the token embeddings the diffusion U-Net
// attends to: a byte-level BPE tokenizer learned from SynthFace captions and
// a CLIP-style causal transformer encoder trained contrastively.
package text

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"ddgi/internal/imageio"
	"ddgi/torch"
)

// Special token ids of ddgi's own tokenizer. Code that may meet another
// tokenizer (CLIP's) asks Vocab.Specials instead.
const (
	PadID int64 = iota
	BOSID
	EOSID
	UnkID
	numSpecial
)

var specialNames = [numSpecial]string{"<pad>", "<bos>", "<eos>", "<unk>"}

// byteBase is the id of byte 0: every byte has a token, so any input encodes.
const byteBase = numSpecial

// maxPiece bounds one pre-token's length: BPE is quadratic in it, and a
// 10k-character "word" of junk must not stall.
const maxPiece = 64

// Tokenizer is a byte-level BPE (GPT-2 style: a word's leading space belongs
// to the word) over lower-cased, whitespace-normalised text.
type Tokenizer struct {
	merges [][2]int64         // merge k makes id byteBase+256+k
	rank   map[[2]int64]int   // pair → merge index
	tokens [][]byte           // id → bytes (specials empty)
	mu     sync.Mutex         // guards cache
	cache  map[string][]int64 // piece → ids
}

// tokenizerFile is the JSON layout of weights/tokenizer.json. Only Merges is
// read back; Tokens is for people (bytes that are not valid UTF-8 in hex).
type tokenizerFile struct {
	Format  string     `json:"format"`
	Special []string   `json:"special"`
	Merges  [][2]int64 `json:"merges"`
	Tokens  []string   `json:"tokens"`
}

func newTokenizer(merges [][2]int64) (*Tokenizer, error) {
	t := &Tokenizer{rank: map[[2]int64]int{}, cache: map[string][]int64{}}
	t.tokens = make([][]byte, byteBase, byteBase+256+int64(len(merges)))
	for b := 0; b < 256; b++ {
		t.tokens = append(t.tokens, []byte{byte(b)})
	}
	for k, m := range merges {
		n := int64(len(t.tokens))
		if m[0] < byteBase || m[1] < byteBase || m[0] >= n || m[1] >= n {
			return nil, fmt.Errorf("merge %d: ids %v out of range [%d,%d)", k, m, byteBase, n)
		}
		if _, dup := t.rank[m]; dup {
			return nil, fmt.Errorf("merge %d: pair %v repeated", k, m)
		}
		t.rank[m] = k
		t.tokens = append(t.tokens, append(append([]byte{}, t.tokens[m[0]]...), t.tokens[m[1]]...))
	}
	t.merges = merges
	return t, nil
}

// LoadTokenizer reads a vocabulary written by Save.
func LoadTokenizer(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	var f tokenizerFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	if f.Format != "ddgi-bpe-v1" {
		return nil, fmt.Errorf("load tokenizer %s: format %q, want ddgi-bpe-v1", path, f.Format)
	}
	t, err := newTokenizer(f.Merges)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

// Save writes the vocabulary as JSON, atomically.
func (t *Tokenizer) Save(path string) error {
	f := tokenizerFile{Format: "ddgi-bpe-v1", Special: specialNames[:], Merges: t.merges}
	for _, tok := range t.tokens[byteBase:] {
		if utf8.Valid(tok) {
			f.Tokens = append(f.Tokens, string(tok))
		} else {
			f.Tokens = append(f.Tokens, fmt.Sprintf("<0x%X>", tok))
		}
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	return imageio.WriteAtomic(path, b)
}

// VocabSize counts specials, the 256 bytes and the merges.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Normalize is what the tokenizer sees: valid UTF-8, lower case, control
// characters and whitespace runs turned into single spaces, trimmed.
// Decode(Encode(s)) == Normalize(s) for every s.
func Normalize(s string) string {
	s = strings.ToLower(strings.ToValidUTF8(s, "\uFFFD"))
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// pieces splits normalised text into pre-tokens: an optional leading space
// then a run of letters/digits or a run of other symbols; BPE never merges
// across pieces. Over-long runs are cut at maxPiece bytes.
func pieces(s string) []string {
	var out []string
	wordy := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	start := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		j := i + n
		if r == ' ' && j < len(s) { // the space joins the following run
			r, n = utf8.DecodeRuneInString(s[j:])
			j += n
		}
		kind := wordy(r)
		for j < len(s) {
			r2, n2 := utf8.DecodeRuneInString(s[j:])
			if r2 == ' ' || wordy(r2) != kind || j+n2-start > maxPiece {
				break
			}
			j += n2
		}
		out = append(out, s[start:j])
		start, i = j, j
	}
	return out
}

// Encode maps text to token ids without specials. It never fails: bytes no
// merge covers stay single-byte tokens.
func (t *Tokenizer) Encode(s string) []int64 {
	var ids []int64
	for _, p := range pieces(Normalize(s)) {
		ids = append(ids, t.encodePiece(p)...)
	}
	return ids
}

func (t *Tokenizer) encodePiece(p string) []int64 {
	t.mu.Lock()
	if ids, ok := t.cache[p]; ok {
		t.mu.Unlock()
		return ids
	}
	t.mu.Unlock()
	ids := make([]int64, len(p))
	for i := 0; i < len(p); i++ {
		ids[i] = byteBase + int64(p[i])
	}
	for len(ids) > 1 { // merge the lowest-ranked adjacent pair until none applies
		best, at := -1, -1
		for i := 0; i+1 < len(ids); i++ {
			if r, ok := t.rank[[2]int64{ids[i], ids[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		merged := ids[:at:at]
		merged = append(merged, byteBase+256+int64(best))
		for i := at + 2; i < len(ids); i++ {
			if i+1 < len(ids) && [2]int64{ids[i], ids[i+1]} == t.merges[best] {
				merged = append(merged, byteBase+256+int64(best))
				i++
				continue
			}
			merged = append(merged, ids[i])
		}
		ids = merged
	}
	t.mu.Lock()
	if len(t.cache) < 50000 {
		t.cache[p] = ids
	}
	t.mu.Unlock()
	return ids
}

// EncodeBatch builds a [B,ctx] int64 tensor: <bos> tokens <eos> <pad>….
// Text longer than ctx-2 tokens is cut, keeping the <eos>. Text that
// normalises to nothing is an error (use EmptyIDs for the unconditional
// prompt).
func (t *Tokenizer) EncodeBatch(texts []string, ctx int) (*torch.Tensor, error) {
	if ctx < 2 {
		return nil, fmt.Errorf("tokenize: context length %d, want ≥ 2", ctx)
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("tokenize: no texts")
	}
	flat := make([]int64, 0, len(texts)*ctx)
	for i, s := range texts {
		ids := t.Encode(s)
		if len(ids) == 0 {
			return nil, fmt.Errorf("tokenize: text %d is empty", i)
		}
		flat = append(flat, row(ids, ctx)...)
	}
	var out *torch.Tensor
	err := torch.Try(func() { out = torch.FromInt64(flat, int64(len(texts)), int64(ctx)) })
	return out, err
}

// row frames ids as <bos> ids <eos> padded or cut to ctx.
func row(ids []int64, ctx int) []int64 { return frame(ids, ctx, ddgiSpecials) }

// EmptyIDs is the empty prompt, <bos> <eos> <pad>…, for n rows: the
// unconditional input of classifier-free guidance.
func EmptyIDs(n, ctx int) *torch.Tensor {
	flat := make([]int64, 0, n*ctx)
	for i := 0; i < n; i++ {
		flat = append(flat, row(nil, ctx)...)
	}
	return torch.FromInt64(flat, int64(n), int64(ctx))
}

// Decode joins the tokens' bytes; specials other than <unk> are dropped and
// out-of-range ids read as <unk>.
func (t *Tokenizer) Decode(ids []int64) string {
	var b []byte
	for _, id := range ids {
		switch {
		case id == PadID || id == BOSID || id == EOSID:
		case id < 0 || id >= int64(len(t.tokens)) || id == UnkID:
			b = append(b, specialNames[UnkID]...)
		default:
			b = append(b, t.tokens[id]...)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// LearnBPE learns merges from a corpus until the vocabulary has vocab
// tokens or no pair occurs minCount times. Ties break on the smaller pair,
// so the result depends only on the corpus.
func LearnBPE(corpus []string, vocab, minCount int) (*Tokenizer, error) {
	if vocab < int(byteBase)+256 {
		return nil, fmt.Errorf("learn bpe: vocab %d below the %d specials and bytes", vocab, int(byteBase)+256)
	}
	counts := map[string]int{}
	for _, s := range corpus {
		for _, p := range pieces(Normalize(s)) {
			counts[p]++
		}
	}
	type word struct {
		ids []int64
		n   int
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([]word, len(keys))
	for i, k := range keys {
		w := word{n: counts[k]}
		for j := 0; j < len(k); j++ {
			w.ids = append(w.ids, byteBase+int64(k[j]))
		}
		words[i] = w
	}
	var merges [][2]int64
	for next := byteBase + 256; next < int64(vocab); next++ {
		pairs := map[[2]int64]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.ids); i++ {
				pairs[[2]int64{w.ids[i], w.ids[i+1]}] += w.n
			}
		}
		var best [2]int64
		bestN := 0
		for p, n := range pairs {
			if n > bestN || n == bestN && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1]) {
				best, bestN = p, n
			}
		}
		if bestN < max(minCount, 1) {
			break
		}
		merges = append(merges, best)
		for wi := range words {
			ids := words[wi].ids
			out := ids[:0]
			for i := 0; i < len(ids); i++ {
				if i+1 < len(ids) && ids[i] == best[0] && ids[i+1] == best[1] {
					out = append(out, next)
					i++
					continue
				}
				out = append(out, ids[i])
			}
			words[wi].ids = out
		}
	}
	return newTokenizer(merges)
}
