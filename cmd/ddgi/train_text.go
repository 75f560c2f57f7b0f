package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ddgi/text"
	"ddgi/text/texttrain"
	"ddgi/train"
)

func init() {
	registerIn("train", command{name: "tokenizer", summary: "learn the BPE caption vocabulary (weights/tokenizer.json)", run: runTrainTokenizer})
	registerIn("train", command{name: "text", summary: "train the text encoder contrastively (CLIP-style) on SynthFace or a --data folder; resumable", run: runTrainText})
}

func runTrainTokenizer(args []string) error {
	fs := newFlags("train tokenizer", "[flags]")
	out := fs.String("out", "weights/tokenizer.json", "vocabulary file to write")
	n := fs.Int("samples", 20000, "SynthFace training seeds whose captions form the corpus")
	vocab := fs.Int("vocab", 1024, "target vocabulary size (4 specials + 256 bytes + merges)")
	minCount := fs.Int("min-count", 5, "stop merging when the best pair occurs fewer times")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	corpus := texttrain.Corpus(*n)
	tok, err := text.LearnBPE(corpus, *vocab, *minCount)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := tok.Save(*out); err != nil {
		return err
	}
	var tokens, words int
	for _, s := range corpus {
		tokens += len(tok.Encode(s))
		words += len(strings.Fields(s))
	}
	fmt.Printf("%d captions → vocabulary of %d tokens in %s (%.2f tokens per word)\n", len(corpus), tok.VocabSize(), *out, float64(tokens)/float64(words))
	return nil
}

func runTrainText(args []string) error {
	fs := newFlags("train text", "[flags]")
	preset := fs.String("preset", "small64", "text encoder preset: tiny or small64")
	out := fs.String("out", "runs/text", "run folder (resumes from its newest checkpoint; checkpoints/, latest/, log.jsonl, loss.png, eval/, probe.txt)")
	tokPath := fs.String("tokenizer", "weights/tokenizer.json", "vocabulary from `ddgi train tokenizer`, or a CLIP tokenizer (folder with vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz)")
	steps := fs.Int64("steps", 3000, "optimizer steps")
	batchSize := fs.Int("batch", 128, "image/caption pairs per step (the contrastive negatives)")
	lr := fs.Float64("lr", 1e-3, "peak learning rate (AdamW, warm-up then cosine)")
	nTrain := fs.Int("n", 8000, "training pairs read once and held in memory (SynthFace renders this many; a --data folder gives at most this many)")
	nBench := fs.Int("bench", 256, "held-out pairs for retrieval accuracy and the probes: SynthFace-bench, or at most this many of a --data folder's --val part (a folder needs --val ≥ 5)")
	size := fs.Int("size", 64, "image side")
	embed := fs.Int64("embed", 128, "shared embedding width")
	widths := fs.String("image-widths", "16,32,64,128", "image tower widths, one stride-2 level each")
	evalEvery := fs.Int64("eval-every", 500, "steps between bench retrieval evaluations")
	ckptMin := fs.Float64("ckpt-minutes", 3, "old name of --ckpt-every, in minutes")
	ckptEvery := ckptEveryFlag(fs, 3*time.Minute, func() (time.Duration, bool) {
		return time.Duration(*ckptMin * float64(time.Minute)), flagSet(fs, "ckpt-minutes")
	})
	seed := fs.Uint64("seed", 1, "initialisation and sampling seed")
	export := fs.String("export", "", "also write the text encoder alone here at the end (fp16), e.g. weights/text_small64.safetensors")
	workers := fs.Int("workers", 2, "data workers")
	initFrom := fs.String("init", "", "start the text tower from this exported encoder (e.g. weights/text_small64.safetensors) instead of random weights; the image tower starts fresh")
	tune := fs.String("tune", texttrain.TuneAll, "text-tower weights the optimizer moves: all, or new-tokens (only the embeddings of tokens no photo caption uses, e.g. style words: photo captions keep their exact encoding)")
	artF := addArtFlags(fs, "share of SynthFace training and bench pairs drawn as artworks with style-naming captions (style transfer, paper Sec. 4.4); kept in the run's state")
	df := addDataFlags(fs)
	distF := addDistFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	every, err := ckptEvery()
	if err != nil {
		return err
	}
	artProb, arts, err := artF.parse()
	if err != nil {
		return err
	}
	var iw []int64
	for _, f := range strings.Split(*widths, ",") {
		var w int64
		if _, err := fmt.Sscan(f, &w); err != nil || w < 4 {
			return fmt.Errorf("--image-widths %q: want positive integers", *widths)
		}
		iw = append(iw, w)
	}
	o := texttrain.Options{
		Preset: *preset, Tokenizer: *tokPath, Size: *size, Embed: *embed, ImageWidths: iw,
		Steps: *steps, Batch: *batchSize, LR: *lr, EvalEvery: *evalEvery, Seed: *seed, Init: *initFrom, Tune: *tune,
		Data: df.open, Samples: *nTrain, Bench: *nBench, Workers: *workers,
		CheckpointEvery: every, Export: *export,
	}
	if artProb > 0 {
		o.ArtProb, o.Arts = artProb, arts
	}
	ctx, stop := train.SignalContext(context.Background())
	defer stop()
	group, leave, launched, err := distF.start(ctx, append([]string{"train", "text"}, args...))
	if launched || err != nil {
		return err
	}
	defer leave()
	o.Group = group
	return texttrain.Train(ctx, *out, o)
}
