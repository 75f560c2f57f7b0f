package synthface

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

// chroma is the mean max−min channel spread of an sRGB image, 0…1.
func chroma(img []uint8) float64 {
	var s float64
	for i := 0; i < len(img); i += 3 {
		r, g, b := img[i], img[i+1], img[i+2]
		s += float64(max(r, g, b)-min(r, g, b)) / 255
	}
	return s / float64(len(img)/3)
}

// hueSpread is the standard deviation of green/red over the head's pixels
// (background and cloth excluded): small for one material.
func hueSpread(f *Face) float64 {
	var s, s2, n float64
	for i, c := range f.Mask {
		if c != Background && c != Cloth {
			x := (float64(f.Image[3*i+1]) + 1) / (float64(f.Image[3*i]) + 1)
			s, s2, n = s+x, s2+x*x, n+1
		}
	}
	m := s / n
	return math.Sqrt(max(0, s2/n-m*m))
}

// TestArtStylesKeepTheHead: each artwork depicts the same head as the photo
// (identical mask), looks different, names its style in every caption, and
// the monochrome ones lose colour and never name a colour.
func TestArtStylesKeepTheHead(t *testing.T) {
	colours := []string{"black", "brown", "blond", "golden", "gray", "grey", "silver", "red ", "ginger", "auburn", "brunette", "lipstick", "makeup", "rosy", "pale"}
	for seed := int64(0); seed < 4; seed++ {
		photo := Render(SampleParams(seed), 48)
		for _, art := range Arts {
			p := SampleParams(seed)
			p.Art = art
			f := Render(p, 48)
			if !slices.Equal(f.Mask, photo.Mask) {
				t.Fatalf("seed %d %s: mask differs from the photo's", seed, art)
			}
			if slices.Equal(f.Image, photo.Image) {
				t.Fatalf("seed %d %s: image equals the photo", seed, art)
			}
			for _, c := range f.Captions {
				if !slices.ContainsFunc(artPhrases[art], func(ph string) bool { return strings.HasPrefix(c, ph+" ") }) {
					t.Errorf("seed %d %s: caption %q does not start with the style", seed, art, c)
				}
				if art.monochrome() {
					for _, w := range colours {
						if strings.Contains(strings.ToLower(c), w) {
							t.Errorf("seed %d %s: caption %q names colour %q", seed, art, c, w)
						}
					}
				}
			}
			switch art {
			case ArtStatue, ArtSketch:
				if c, c0 := chroma(f.Image), chroma(photo.Image); c > 0.6*c0 {
					t.Errorf("seed %d %s: chroma %.3f, photo %.3f: not monochrome", seed, art, c, c0)
				}
			case ArtBronze: // one metal: the green/red ratio barely varies over the head
				if h, h0 := hueSpread(f), hueSpread(photo); h > 0.06 || h >= h0 {
					t.Errorf("seed %d bronze: hue spread %.3f (photo %.3f): not one metal", seed, h, h0)
				}
			}
			if art.monochrome() {
				if f.Attrs.BlackHair || f.Attrs.BlondHair || f.Attrs.BrownHair || f.Attrs.GrayHair || f.Attrs.RedHair || f.Attrs.WearingLipstick {
					t.Errorf("seed %d %s: colour attributes kept", seed, art)
				}
			}
		}
	}
}

// TestWithArtShareAndPhotoDefault: prob 0 leaves photos, prob 1 makes every
// sample an artwork, and 0.3 gives about 30% with every style used.
func TestWithArtShareAndPhotoDefault(t *testing.T) {
	n, used := 0, map[Art]int{}
	for s := int64(0); s < 2000; s++ {
		p := SampleParams(s)
		if WithArt(p, 0, Arts).Art != ArtPhoto || WithArt(p, 1, nil).Art != ArtPhoto {
			t.Fatal("prob 0 or no styles gave an artwork")
		}
		if WithArt(p, 1, Arts).Art == ArtPhoto {
			t.Fatal("prob 1 gave a photo")
		}
		q := WithArt(p, 0.3, Arts)
		if q.Art != ArtPhoto {
			n++
			used[q.Art]++
		}
		q.Art = ArtPhoto
		if q != p {
			t.Fatal("WithArt changed more than the style")
		}
	}
	if share := float64(n) / 2000; math.Abs(share-0.3) > 0.04 {
		t.Errorf("artwork share %.3f, want ≈ 0.3", share)
	}
	if len(used) != len(Arts) {
		t.Errorf("styles used: %v", used)
	}
}

func TestParseArtAndJSON(t *testing.T) {
	if _, err := ParseArt("oil painting"); err == nil {
		t.Error("unknown style accepted")
	}
	as, err := ParseArts("statue, sketch")
	if err != nil || !slices.Equal(as, []Art{ArtStatue, ArtSketch}) {
		t.Errorf("ParseArts: %v %v", as, err)
	}
	if all, _ := ParseArts("all"); len(all) != len(Arts) {
		t.Errorf("all: %v", all)
	}
	p := SampleParams(3)
	b, _ := json.Marshal(p)
	if strings.Contains(string(b), `"art"`) {
		t.Error("a photo's params JSON names an art style")
	}
	p.Art = ArtBronze
	b, _ = json.Marshal(p)
	var q Params
	if err := json.Unmarshal(b, &q); err != nil || q.Art != ArtBronze || !strings.Contains(string(b), `"art":"bronze"`) {
		t.Errorf("round trip: %s → %v (%v)", b, q.Art, err)
	}
}
