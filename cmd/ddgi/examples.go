package main

import (
	"fmt"
	"io"
)

// helpExamples are printed under a command's flags by `ddgi help CMD`.
// Each is safe to paste in a checkout (it reads examples/ and weights/)
// and writes only under /tmp/ddgi-out; TestHelpExamplesAreSafe holds them
// to that.
var helpExamples = map[string][]string{
	"generate": {
		`ddgi generate --text "$(sed -n 1p examples/prompts.txt)" --mask examples/mask_0.png --out /tmp/ddgi-out/face.png`,
		`ddgi generate --gan eg3d --views 8 --text "$(sed -n 2p examples/prompts.txt)" --scribble examples/scribble_1.png --out /tmp/ddgi-out/head.png`,
		`ddgi generate --art --text "A marble statue. $(sed -n 1p examples/prompts.txt)" --mask examples/mask_0.png --out /tmp/ddgi-out/statue.png`,
		`mkdir -p /tmp/ddgi-out && printf '{"text":"A smiling woman.","mask":"examples/mask_0.png","seed":1,"out":"/tmp/ddgi-out/b1.png"}\n' > /tmp/ddgi-out/jobs.jsonl && ddgi generate --batch /tmp/ddgi-out/jobs.jsonl`,
	},
	"render": {
		`ddgi render --latent /tmp/ddgi-out/face.latent.safetensors --out /tmp/ddgi-out/face_again.png   # after the first generate example`,
		`ddgi render --latent /tmp/ddgi-out/head.latent.safetensors --yaw 30 --views 12 --out /tmp/ddgi-out/head_yaw30.png`,
	},
	"demo":      {`ddgi demo --out /tmp/ddgi-out/demo`},
	"diffuse":   {`ddgi diffuse --text "$(sed -n 1p examples/prompts.txt)" --mask examples/mask_0.png --n 4 --out /tmp/ddgi-out/diffused.png`},
	"serve":     {`ddgi serve --addr 127.0.0.1:8080   # then open http://127.0.0.1:8080/`},
	"eval":      {`ddgi eval --method ddgi-2d,controlnet --n 20 --out /tmp/ddgi-out/eval   # ~4 min on 2 busy cores; the docs' tables use --n 2000 (hours)`},
	"eval-text": {`ddgi eval-text --n 50 --samples 10   # ~2.5 min on 2 busy cores; docs/text.md uses --n 500 --samples 200`},
	"synth":     {`ddgi synth --n 16 --size 128 --out /tmp/ddgi-out/faces --grid /tmp/ddgi-out/faces.png`},
	"quantize":  {`ddgi quantize --in weights/stylegan2_small64.safetensors --out /tmp/ddgi-out/stylegan2_int8.safetensors --force`},
	"blend":     {"mkdir -p /tmp/ddgi-out && git show 90ed879:weights/inversion_stylegan2_scribble.safetensors > /tmp/ddgi-out/scribble_s15.safetensors && ddgi blend --from /tmp/ddgi-out/scribble_s15.safetensors --to weights/inversion_stylegan2_scribble.safetensors --t 0.9 --quantize --out /tmp/ddgi-out/scribble_blend.safetensors  # the 2D scribble model pulled back toward the session-15 file it was fine-tuned from: more fidelity, less diversity (docs/eval.md, session 21)"},
	"selfcheck": {`ddgi selfcheck`},
	"tokenize":  {`ddgi tokenize --tokenizer weights/tokenizer.json "A smiling woman."`},
	"version":   {`ddgi version`},
	"sample gan": {
		`ddgi sample gan --weights weights --seeds 0-15 --out /tmp/ddgi-out/grid.png`,
		`ddgi sample gan --weights weights --arch eg3d --seeds 0-3 --views 5 --depth --gif /tmp/ddgi-out/turn.gif --out /tmp/ddgi-out/views.png`,
	},
	"train gan":       {`ddgi train gan --arch stylegan2 --preset tiny --kimg 0.1 --out /tmp/ddgi-out/gan   # a tiny run; rerun to resume`},
	"train inversion": {`ddgi train inversion --weights weights --gan stylegan2 --cond mask --steps1 4 --steps2 4 --n 16 --out /tmp/ddgi-out/inv   # a tiny run; rerun to resume`},
}

// printExamples writes the command's examples, if any, under its flags.
func printExamples(w io.Writer, name string) {
	ex := helpExamples[name]
	if len(ex) == 0 {
		return
	}
	fmt.Fprintf(w, "\nexamples:\n")
	for _, e := range ex {
		fmt.Fprintf(w, "  %s\n", e)
	}
}
