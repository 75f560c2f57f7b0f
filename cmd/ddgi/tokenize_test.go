package main

import (
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"ddgi/text"
)

// runOut runs ddgi in-process and returns its exit code, stdout and stderr.
func runOut(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	outF, _ := os.CreateTemp(t.TempDir(), "out")
	errF, _ := os.CreateTemp(t.TempDir(), "err")
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outF, errF
	code := run(args)
	os.Stdout, os.Stderr = stdout, stderr
	read := func(f *os.File) string {
		f.Seek(0, io.SeekStart)
		b, _ := io.ReadAll(f)
		f.Close()
		return string(b)
	}
	return code, read(outF), read(errF)
}

func TestTokenize(t *testing.T) {
	tiny := "../../text/testdata/clipbpe_tiny"
	ddgiTok := "../../weights/tokenizer.json"
	tok, err := text.LoadVocab(ddgiTok)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, id := range append(append([]int64{1}, tok.Encode("a face")...), 2) {
		want = append(want, strconv.FormatInt(id, 10))
	}
	for _, c := range []struct {
		args []string
		out  string
	}{
		{[]string{"tokenize", "--tokenizer", ddgiTok, "a face", "a face"}, strings.Join(want, " ") + "\n" + strings.Join(want, " ") + "\n"},
		{[]string{"tokenize", "--tokenizer", tiny, "--tokens", "The woman's smile", ""},
			`536:"<|startoftext|>" 513:"the</w>" 517:"woman</w>" 526:"'s</w>" 522:"smile</w>" 537:"<|endoftext|>"` + "\n" +
				`536:"<|startoftext|>" 537:"<|endoftext|>"` + "\n"},
		{[]string{"tokenize", "--tokenizer", tiny, "--ctx", "6", "the woman", "the woman the woman"}, "536 513 517 537 537 537\n536 513 517 513 517 537\n"},
		{[]string{"tokenize", "--tokenizer", tiny + "/merges.txt.gz", "--ctx", "5", "the"}, "536 513 537 0 0\n"},
		{[]string{"tokenize", "--tokenizer", tiny, "--pad", "!", "--ctx", "4", "", "the"}, "536 537 0 0\n536 513 537 0\n"},
		{[]string{"tokenize", "--tokenizer", ddgiTok, "--ctx", "4", " "}, "1 2 0 0\n"},
	} {
		code, out, errOut := runOut(t, c.args...)
		if code != 0 || out != c.out {
			t.Errorf("ddgi %q: exit %d, stdout %q (want %q), stderr %q", c.args, code, out, c.out, errOut)
		}
	}
	for _, args := range [][]string{
		{"tokenize", "--tokenizer", ddgiTok},
		{"tokenize", "--tokenizer", ddgiTok, "--pad", "!", "x"},
		{"tokenize", "--tokenizer", tiny, "--pad", "no such token", "x"},
		{"tokenize", "--tokenizer", "no/such/file", "x"},
		{"tokenize", "--tokenizer", tiny + "/expected.json", "x"},
		{"tokenize", "--tokenizer", tiny, "--ctx", "1", "x"},
	} {
		code, out, errOut := runOut(t, args...)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "ddgi tokenize: ") {
			t.Errorf("ddgi %q: exit %d, stdout %q, stderr %q: want one error line and exit 1", args, code, out, errOut)
		}
	}
}
