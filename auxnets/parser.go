package auxnets

import (
	"ddgi/nn"
	"ddgi/synthface"
	"ddgi/torch"
)

// Parser is a small U-Net predicting CelebAMask-HQ's 19 classes
// (synthface.Classes). Keys: enc.*, dec.{0..3}.*, head.*.
type Parser struct {
	Config Config
	Store  *nn.Store
	enc    *Encoder
	dec    []*convNorm
	head   *nn.Conv2d
}

// NewParser builds a parser with freshly initialised weights.
func NewParser(c Config, seed uint64) *Parser { return buildParser(newStore(seed), c) }

// buildParser lays the network out on s.
func buildParser(s *nn.Store, c Config) *Parser {
	root := s.Root()
	p := &Parser{Config: c, Store: s, enc: NewEncoder(root.Sub("enc"), c.Width)}
	ch := p.enc.Channels
	in := ch[4]
	for i := 3; i >= 0; i-- {
		p.dec = append(p.dec, newConvNorm(root.Subf("dec.%d", 3-i), in+ch[i], ch[i], 1))
		in = ch[i]
	}
	p.head = nn.NewConv2d(root.Sub("head"), ch[0], synthface.NumClasses, 1, nn.Conv2dOpts{})
	return p
}

// LoadParser reads shipped parser weights onto dev.
func LoadParser(path string, dev torch.Device) (*Parser, error) {
	f, c, err := openWeights(path, NetParser)
	if err != nil {
		return nil, err
	}
	p := buildParser(loadStore(dev), c)
	return p, loadFrozen(p.Store, f, path)
}

// Logits returns [N,19,H,W] class scores at the input's resolution.
func (p *Parser) Logits(x *torch.Tensor) *torch.Tensor {
	feats := p.enc.Forward(x)
	h := feats[4]
	for k, d := range p.dec {
		skip := feats[3-k]
		h = torch.Interpolate(h, skip.Size(2), skip.Size(3), torch.Nearest, false)
		h = d.Forward(torch.Cat([]*torch.Tensor{h, skip}, 1))
	}
	out := p.head.Forward(h)
	if x.Size(2) != InputSize || x.Size(3) != InputSize {
		out = torch.Interpolate(out, x.Size(2), x.Size(3), torch.Bilinear, false)
	}
	return out
}

// Parse returns [N,H,W] int64 labels (no gradient).
func (p *Parser) Parse(x *torch.Tensor) *torch.Tensor {
	var y *torch.Tensor
	torch.NoGrad(func() { y = p.Logits(x).Argmax(1, false) })
	return y
}

// ParserLoss is pixel-wise cross-entropy against [N,H,W] int64 labels.
func ParserLoss(logits, labels *torch.Tensor) *torch.Tensor {
	return torch.CrossEntropy(logits, labels, nil, -100, 0, torch.ReduceMean)
}
