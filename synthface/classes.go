package synthface

import "image/color"

// Class indices in CelebAMask-HQ's order. "Left" parts are the subject's
// own left, which a frontal camera shows on the image's right.
const (
	Background = iota
	Skin
	Nose
	EyeG // eyeglasses and sunglasses
	LEye
	REye
	LBrow
	RBrow
	LEar
	REar
	Mouth // inner mouth and teeth
	ULip
	LLip
	Hair
	Hat
	EarR  // earring
	NeckL // necklace
	Neck
	Cloth
	NumClasses
)

// Classes names each label as CelebAMask-HQ's part files do.
var Classes = [NumClasses]string{
	"background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow",
	"l_ear", "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r",
	"neck_l", "neck", "cloth",
}

// Palette is the project's mask visualisation, the colours commonly used for
// CelebAMask-HQ (MaskGAN); an RGB mask drawn in it is read back losslessly.
var Palette = [NumClasses]color.RGBA{
	{0, 0, 0, 255}, {204, 0, 0, 255}, {76, 153, 0, 255}, {204, 204, 0, 255},
	{51, 51, 255, 255}, {204, 0, 204, 255}, {0, 255, 255, 255}, {255, 204, 204, 255},
	{102, 51, 0, 255}, {255, 0, 0, 255}, {102, 204, 0, 255}, {255, 255, 0, 255},
	{0, 0, 153, 255}, {0, 0, 204, 255}, {255, 51, 153, 255}, {0, 204, 204, 255},
	{0, 51, 0, 255}, {255, 153, 51, 255}, {0, 204, 0, 255},
}

// FlipClass maps a label to its mirror image's label (left/right parts swap).
func FlipClass(c uint8) uint8 {
	switch c {
	case LEye, LBrow, LEar:
		return c + 1
	case REye, RBrow, REar:
		return c - 1
	}
	return c
}
