package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"ddgi/text"
)

func init() {
	register(command{name: "tokenize", summary: "print the token ids of texts under ddgi's or CLIP's tokenizer", run: runTokenize})
}

func runTokenize(args []string) error {
	fs := newFlags("tokenize", `--tokenizer weights/tokenizer.json [--tokens] [--ctx 77] [--pad "<|endoftext|>"] "text" ["text" …]`)
	tokPath := fs.String("tokenizer", "weights/tokenizer.json", "ddgi's tokenizer.json, a CLIP tokenizer folder (vocab.json + merges.txt, or a diffusers model folder) or OpenAI's bpe_simple_vocab_16e6.txt.gz")
	tokens := fs.Bool("tokens", false, "print each id as id:\"token\"")
	ctx := fs.Int("ctx", 0, "print the model's row: BOS ids EOS then padding, cut to this many positions keeping EOS (0: BOS ids EOS, unpadded)")
	pad := fs.String("pad", "", "CLIP only: the padding token, \"<|endoftext|>\" (SD 1.5's Hugging Face tokenizer) or \"!\" (id 0, OpenAI's clip.tokenize); default: the tokenizer's own")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	texts := fs.Args()
	if len(texts) == 0 {
		return errors.New("no text given (usage: ddgi tokenize [flags] \"text\" …)")
	}
	if *ctx == 1 || *ctx < 0 {
		return fmt.Errorf("--ctx %d: want 0 or at least 2", *ctx)
	}
	tok, err := text.LoadVocab(*tokPath)
	if err != nil {
		return err
	}
	if *pad != "" {
		c, ok := tok.(*text.CLIPTokenizer)
		if !ok {
			return fmt.Errorf("--pad: %s is ddgi's tokenizer, whose padding is fixed (<pad>, id %d)", *tokPath, text.PadID)
		}
		if err := c.SetPad(*pad); err != nil {
			return err
		}
	}
	sp := tok.Specials()
	var out strings.Builder
	for _, s := range texts {
		ids := tok.Encode(s)
		row := append(append([]int64{sp.BOS}, ids...), sp.EOS)
		if *ctx > 0 {
			t := tok.EmptyIDs(1, *ctx)
			if len(ids) > 0 {
				if t, err = tok.EncodeBatch([]string{s}, *ctx); err != nil {
					return err
				}
			}
			row = t.Int64s()
		}
		for i, id := range row {
			if i > 0 {
				out.WriteByte(' ')
			}
			out.WriteString(strconv.FormatInt(id, 10))
			if *tokens {
				out.WriteByte(':')
				out.WriteString(strconv.Quote(tok.Token(id)))
			}
		}
		out.WriteByte('\n')
	}
	_, err = os.Stdout.WriteString(out.String())
	return err
}
