package main

import (
	"flag"
	"fmt"
	"strings"

	"ddgi/synthface"
)

// artFlags are the --art-prob and --arts flags of the training commands
// that can mix SynthFace artworks into their data (style transfer).
type artFlags struct {
	prob *float64
	list *string
}

// addArtFlags registers them; probUsage says what the share is for.
func addArtFlags(fs *flag.FlagSet, probUsage string) artFlags {
	return artFlags{
		prob: fs.Float64("art-prob", 0, probUsage),
		list: fs.String("arts", "all", "with --art-prob: styles, a comma list of "+strings.Join(synthface.ArtNames[1:], ", ")+", or all"),
	}
}

// parse validates the share (0…1) and the styles.
func (a artFlags) parse() (prob float64, arts []synthface.Art, err error) {
	if *a.prob < 0 || *a.prob > 1 {
		return 0, nil, fmt.Errorf("--art-prob %g: want 0…1", *a.prob)
	}
	if arts, err = synthface.ParseArts(*a.list); err != nil {
		return 0, nil, fmt.Errorf("--arts: %w", err)
	}
	return *a.prob, arts, nil
}

// artNames are the styles' names, as run states and configs record them.
func artNames(arts []synthface.Art) []string {
	names := make([]string, len(arts))
	for i, a := range arts {
		names[i] = a.String()
	}
	return names
}
