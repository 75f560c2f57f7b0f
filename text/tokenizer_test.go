package text

import (
	"strings"
	"sync"
	"testing"
)

var (
	tokOnce sync.Once
	testTok *Tokenizer
)

// tinyTokenizer is learned once per test binary from a small corpus: the
// face captions of testdata/clip_golden.json.
func tinyTokenizer(t *testing.T) *Tokenizer {
	tokOnce.Do(func() {
		var corpus []string
		for _, c := range readCases(t, "testdata/clip_golden.json") {
			corpus = append(corpus, c.Text)
		}
		var err error
		testTok, err = LearnBPE(corpus, 600, 2)
		if err != nil {
			t.Fatal(err)
		}
	})
	return testTok
}

func TestTokenizerRoundTripAndCompression(t *testing.T) {
	tok := tinyTokenizer(t)
	for _, s := range []string{
		"The woman has wavy brown hair and arched eyebrows. She is smiling and wears earrings.",
		"  This   MAN has a 5 o'clock shadow,\tand\nlooks middle-aged.  ",
		"A smiling woman with bangs, a necklace and heavy makeup.",
	} {
		ids := tok.Encode(s)
		if got, want := tok.Decode(ids), Normalize(s); got != want {
			t.Fatalf("round trip\n got %q\nwant %q", got, want)
		}
		if words := len(strings.Fields(s)); len(ids) > 2*words {
			t.Errorf("%d tokens for %d in-vocabulary words: merges not applied", len(ids), words)
		}
	}
	if tok.VocabSize() <= int(byteBase)+256 {
		t.Fatalf("no merges learned: vocab %d", tok.VocabSize())
	}
}

func TestTokenizerSurvivesJunk(t *testing.T) {
	tok := tinyTokenizer(t)
	long := strings.Repeat("supercalifragilistic", 500) // one 10k-char word
	for _, s := range []string{
		"😀🔥 emoji face", "\x00\x01\x7f control\x1b[31m", "Größe naïve café ñandú", "日本語のテキスト",
		"\xff\xfe invalid utf8", long, strings.Repeat("a ", 5000), "zxqv blorptastic", "...!!!???",
	} {
		ids := tok.Encode(s)
		if got, want := tok.Decode(ids), Normalize(s); got != want {
			t.Fatalf("round trip of junk %.40q: got %.40q", s, got)
		}
		for _, id := range ids {
			if id < 0 || id >= int64(tok.VocabSize()) {
				t.Fatalf("id %d out of vocab", id)
			}
		}
		x, err := tok.EncodeBatch([]string{s}, 16)
		if err != nil {
			t.Fatal(err)
		}
		if sh := x.Shape(); sh[0] != 1 || sh[1] != 16 {
			t.Fatalf("shape %v", sh)
		}
	}
	if got := tok.Decode([]int64{-5, 1 << 40, UnkID}); got != "<unk><unk><unk>" {
		t.Fatalf("bad ids decode to %q", got)
	}
}

func TestEncodeBatchFramingErrorsAndTruncation(t *testing.T) {
	tok := tinyTokenizer(t)
	for _, bad := range [][]string{{""}, {"ok", "  \n\t "}, nil} {
		if _, err := tok.EncodeBatch(bad, 16); err == nil {
			t.Fatalf("EncodeBatch(%q) gave no error", bad)
		}
	}
	if _, err := tok.EncodeBatch([]string{"hi"}, 1); err == nil {
		t.Fatal("context 1 accepted")
	}
	x, err := tok.EncodeBatch([]string{"the woman", strings.Repeat("the woman is smiling. ", 50)}, 12)
	if err != nil {
		t.Fatal(err)
	}
	v := x.Int64s()
	short, long := v[:12], v[12:]
	n := len(tok.Encode("the woman"))
	if short[0] != BOSID || short[n+1] != EOSID || short[11] != PadID {
		t.Fatalf("framing %v", short)
	}
	if long[0] != BOSID || long[11] != EOSID {
		t.Fatalf("truncated row %v: want <bos> … <eos>", long)
	}
	if got := tok.Decode(long); !strings.HasPrefix(Normalize(strings.Repeat("the woman is smiling. ", 50)), got) {
		t.Fatalf("truncation is not a prefix: %q", got)
	}
	if e := EmptyIDs(2, 5).Int64s(); e[0] != BOSID || e[1] != EOSID || e[2] != PadID || e[5] != BOSID {
		t.Fatalf("empty ids %v", e)
	}
}

func TestTokenizerSaveLoad(t *testing.T) {
	tok := tinyTokenizer(t)
	path := t.TempDir() + "/tok.json"
	if err := tok.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	s := "The lady has rosy cheeks and wears a hat. 🎩"
	a, b := tok.Encode(s), back.Encode(s)
	if len(a) != len(b) || back.VocabSize() != tok.VocabSize() {
		t.Fatalf("loaded tokenizer differs: %v vs %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("loaded tokenizer differs at %d", i)
		}
	}
}
