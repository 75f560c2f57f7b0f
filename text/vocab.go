package text

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unicode/utf8"

	"ddgi/torch"
)

// Specials are the ids a tokenizer frames every caption with: BOS first,
// EOS after the last token, Pad filling the rest of the context.
type Specials struct {
	BOS, EOS, Pad int64
}

// Vocab is a tokenizer as the rest of ddgi uses it: ddgi's own byte-level
// BPE (*Tokenizer, weights/tokenizer.json) or CLIP's (*CLIPTokenizer, Stable
// Diffusion 1.5's). Code that needs a special id asks Specials rather than
// assuming ddgi's constants.
type Vocab interface {
	// Encode maps text to ids, without BOS/EOS.
	Encode(s string) []int64
	// EncodeBatch frames each text as BOS ids EOS Pad… in a [B,ctx] int64
	// tensor, cutting ids to ctx−2 so that EOS stays last. ddgi's tokenizer
	// refuses text that encodes to nothing; use EmptyIDs for the empty prompt.
	EncodeBatch(texts []string, ctx int) (*torch.Tensor, error)
	// EmptyIDs is the empty prompt (BOS EOS Pad…) for n rows.
	EmptyIDs(n, ctx int) *torch.Tensor
	// Specials are the framing ids.
	Specials() Specials
	// VocabSize is one past the largest id.
	VocabSize() int
	// Token is id's entry as the vocabulary file spells it.
	Token(id int64) string
	// Decode turns ids back into text.
	Decode(ids []int64) string
}

var (
	_ Vocab = (*Tokenizer)(nil)
	_ Vocab = (*CLIPTokenizer)(nil)
)

// frame lays ids out as BOS ids EOS Pad… over ctx positions, cutting ids to
// ctx−2.
func frame(ids []int64, ctx int, sp Specials) []int64 {
	if len(ids) > ctx-2 {
		ids = ids[:ctx-2]
	}
	r := make([]int64, ctx)
	r[0] = sp.BOS
	copy(r[1:], ids)
	r[len(ids)+1] = sp.EOS
	for i := len(ids) + 2; i < ctx; i++ {
		r[i] = sp.Pad
	}
	return r
}

// ddgiSpecials are ddgi's own tokenizer's fixed ids.
var ddgiSpecials = Specials{BOS: BOSID, EOS: EOSID, Pad: PadID}

// Specials are ddgi's fixed <bos>, <eos> and <pad>: BOSID, EOSID, PadID.
func (t *Tokenizer) Specials() Specials { return ddgiSpecials }

// EmptyIDs is EmptyIDs (the package function), as a Vocab method.
func (t *Tokenizer) EmptyIDs(n, ctx int) *torch.Tensor { return EmptyIDs(n, ctx) }

// Token is a special's name (<pad>, <bos>, <eos>, <unk>), a token's bytes
// when they are UTF-8, else <0x…> in hex as Save writes them; "" outside
// the vocabulary.
func (t *Tokenizer) Token(id int64) string {
	switch {
	case id < 0 || id >= int64(len(t.tokens)):
		return ""
	case id < byteBase:
		return specialNames[id]
	case utf8.Valid(t.tokens[id]):
		return string(t.tokens[id])
	}
	return fmt.Sprintf("<0x%X>", t.tokens[id])
}

// LoadVocab reads any tokenizer ddgi knows, telling them apart by content:
// ddgi's own tokenizer.json ("format": "ddgi-bpe-v1"), a CLIP tokenizer
// folder (vocab.json + merges.txt, or a diffusers model folder holding
// tokenizer/; vocab.json or merges.txt named directly means its folder),
// or OpenAI's gzipped bpe_simple_vocab_16e6.txt.gz.
func LoadVocab(path string) (Vocab, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	if fi.IsDir() {
		if _, ok := clipFolder(path); !ok {
			return nil, fmt.Errorf("load tokenizer %s: a folder must hold vocab.json and merges.txt (or tokenizer/ with them)", path)
		}
		return LoadCLIP(path)
	}
	switch filepath.Base(path) {
	case "vocab.json", "merges.txt":
		return LoadCLIP(filepath.Dir(path))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	head := make([]byte, 512)
	n, _ := f.Read(head)
	f.Close()
	head = head[:n]
	if bytes.HasPrefix(head, []byte{0x1f, 0x8b}) {
		return LoadCLIP(path)
	}
	if t := bytes.TrimSpace(head); len(t) > 0 && t[0] == '{' {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("load tokenizer: %w", err)
		}
		var probe struct {
			Format string          `json:"format"`
			Model  json.RawMessage `json:"model"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
		}
		switch {
		case probe.Format != "":
			return LoadTokenizer(path)
		case probe.Model != nil:
			return nil, fmt.Errorf("load tokenizer %s: a Hugging Face fast-tokenizer file is not read; pass the folder holding vocab.json and merges.txt", path)
		}
	}
	return nil, errors.New("load tokenizer " + path + ": not ddgi's tokenizer.json, a CLIP folder (vocab.json + merges.txt) or OpenAI's bpe_simple_vocab_16e6.txt.gz")
}
