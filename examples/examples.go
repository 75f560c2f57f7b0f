// Package examples ships the example conditions and prompts (see README.md)
// inside the binary, so `ddgi serve`'s page can offer them wherever it runs.
package examples

import "embed"

// FS holds the example masks (label and palette form), scribbles and
// prompts.txt.
//
//go:embed *.png prompts.txt
var FS embed.FS
