package server

import (
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"ddgi/examples"
	"ddgi/synthface"
)

// paletteClass is one mask label as the page's painter shows it.
type paletteClass struct {
	Label int    `json:"label"`
	Name  string `json:"name"`
	RGB   [3]int `json:"rgb"`
}

// classesJSON is GET /api/classes: the 19 CelebAMask-HQ classes in label
// order with synthface.Palette's colours, the ones data.DecodeMask reads
// back, so the page paints exactly what the server decodes.
func classesJSON() []paletteClass {
	out := make([]paletteClass, len(synthface.Classes))
	for i, n := range synthface.Classes {
		c := synthface.Palette[i]
		out[i] = paletteClass{Label: i, Name: n, RGB: [3]int{int(c.R), int(c.G), int(c.B)}}
	}
	return out
}

func (s *Server) handleClasses(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	writeJSON(w, http.StatusOK, classesJSON())
}

// handleExamples lists the shipped examples (GET /api/examples): masks in
// palette form (the painter loads those), scribbles and prompts.
func (s *Server) handleExamples(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	masks, _ := fs.Glob(examples.FS, "mask_*_color.png")
	scribbles, _ := fs.Glob(examples.FS, "scribble_*.png")
	text, err := fs.ReadFile(examples.FS, "prompts.txt")
	if err != nil {
		writeError(w, err)
		return
	}
	var prompts []string
	for _, l := range strings.Split(string(text), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			prompts = append(prompts, l)
		}
	}
	// Styles the art models learned, as the prompt prefix that names each.
	type style struct {
		Name   string `json:"name"`
		Prefix string `json:"prefix"`
	}
	var styles []style
	for i, n := range synthface.ArtNames {
		styles = append(styles, style{n, synthface.Art(i).Phrase()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"masks": masks, "scribbles": scribbles, "prompts": prompts, "styles": styles})
}

// handleExampleFile serves one example PNG (GET /examples/NAME).
func (s *Server) handleExampleFile(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	name := r.PathValue("name")
	b, err := fs.ReadFile(examples.FS, name)
	if err != nil || path.Ext(name) != ".png" {
		writeError(w, &httpError{http.StatusNotFound, fmt.Errorf("no example %q (GET /api/examples lists them)", name)})
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write(b)
}
