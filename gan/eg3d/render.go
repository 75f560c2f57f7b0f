package eg3d

import (
	"math"

	"ddgi/gan/stylegan2"
	"ddgi/torch"
)

// Field is a radiance field queried at points [B,P,3]: it returns raw
// densities [B,P,1] and features [B,P,F] (the first three are RGB in [0,1]).
// The tri-plane decoder is one; tests plug in analytic fields.
type Field func(pts *torch.Tensor) (sigma, feat *torch.Tensor)

// Rays casts one ray per pixel of a res×res image for EG3D cameras cam
// [B,25] (row-major cam2world in OpenCV axes, then normalised intrinsics):
// origins and unit directions [B,res²,3], row-major pixels.
func Rays(cam *torch.Tensor, res int) (origins, dirs *torch.Tensor) {
	b := cam.Size(0)
	r := int64(res)
	c2w := cam.Narrow(1, 0, 16).Reshape(b, 4, 4)
	rot := c2w.Narrow(1, 0, 3).Narrow(2, 0, 3)
	o := c2w.Narrow(1, 0, 3).Select(2, 3) // [B,3]
	at := func(i int64) *torch.Tensor { return cam.Select(1, i).Reshape(b, 1) }
	fx, cx, fy, cy := at(16), at(18), at(20), at(21)
	lin := torch.Arange(0, float64(res), 1, torch.Float32, cam.Device()).AddScalar(0.5).DivScalar(float64(res))
	u := lin.Reshape(1, r).Expand(r, r).Reshape(1, r*r)
	v := lin.Reshape(r, 1).Expand(r, r).Reshape(1, r*r)
	x := u.Sub(cx).Div(fx)
	y := v.Sub(cy).Div(fy)
	d := torch.Stack([]*torch.Tensor{x, y, torch.Ones([]int64{b, r * r}, torch.Float32, cam.Device())}, 2)
	d = d.Matmul(rot.Transpose(1, 2))
	d = d.Div(d.Norm(2, []int64{2}, true))
	return o.Unsqueeze(1).Expand(b, r*r, 3), d
}

// RenderOpts set the depth range and sample counts along each ray.
type RenderOpts struct {
	Start, End float64
	Samples    int // stratified (coarse) samples
	Importance int // importance (fine) samples drawn from the coarse weights
	// Rng jitters the stratified samples (training); nil places them at bin
	// centres (deterministic rendering).
	Rng *torch.Generator
	// Rows draws the jitter for the whole data-parallel batch and keeps
	// the rank's rows (nil: one process).
	Rows *stylegan2.Rows
	// EG3D samples as NVlabs' ImportanceRenderer (Config.Sampling "eg3d").
	EG3D bool
}

// Rendered is a volume-rendered batch of rays.
type Rendered struct {
	Feat   *torch.Tensor // [B,R,F]
	Depth  *torch.Tensor // [B,R,1] expected depth along the ray
	Weight *torch.Tensor // [B,R,1] accumulated opacity
	// WeightedDepth is Σ wᵢ·zᵢ [B,R,1], the numerator of Depth.
	WeightedDepth *torch.Tensor
	// near and far are the extreme sample depths (EG3D sampling only).
	near, far float64
}

// stratified returns sorted depths [B,R,N]: bin i of N equal bins of
// [start, end] at (i + jitter)·Δ, Δ = (end − start)/N; with o.EG3D at
// linspace(start, end, N)ᵢ + jitter·Δ, Δ = (end − start)/(N − 1), as NVlabs
// (the last sample may pass end). Jitter is uniform, or ½ without o.Rng.
func stratified(b, r int64, o RenderOpts, dev torch.Device) *torch.Tensor {
	n := int64(o.Samples)
	step := (o.End - o.Start) / float64(n)
	if o.EG3D {
		step = (o.End - o.Start) / float64(n-1)
	}
	base := torch.Arange(0, float64(n), 1, torch.Float32, dev).Reshape(1, 1, n).Expand(b, r, n)
	var jit *torch.Tensor
	if j := o.jitter(dev); j != nil {
		jit = j([]int64{b, r, n})
	} else {
		jit = torch.Full([]int64{b, r, n}, 0.5, torch.Float32, dev)
	}
	return base.Add(jit).MulScalar(step).AddScalar(o.Start)
}

// query evaluates the field at depths t [B,R,N] along the rays.
func query(f Field, origins, dirs, t *torch.Tensor) (sigma, feat *torch.Tensor) {
	s := t.Shape()
	b, r, n := s[0], s[1], s[2]
	pts := origins.Unsqueeze(2).Add(dirs.Unsqueeze(2).Mul(t.Unsqueeze(3))) // [B,R,N,3]
	sg, ft := f(pts.Reshape(b, r*n, 3))
	return sg.Reshape(b, r, n, 1), ft.Reshape(b, r, n, ft.Size(-1))
}

// RayMarch composites samples along each ray with the quadrature of NeRF
// (Mildenhall et al. 2020, Eq. 3) as EG3D's MipRayMarcher2 does: midpoint
// colours and densities, σ = softplus(raw − 1), α = 1 − exp(−σδ),
// wᵢ = αᵢ Πⱼ<ᵢ(1 − αⱼ). t [B,R,N], sigma [B,R,N,1], feat [B,R,N,F].
func RayMarch(t, sigma, feat *torch.Tensor) (out Rendered, weights *torch.Tensor) {
	n := t.Size(2)
	mid := func(x *torch.Tensor) *torch.Tensor {
		return x.Narrow(2, 0, n-1).Add(x.Narrow(2, 1, n-1)).MulScalar(0.5)
	}
	delta := t.Narrow(2, 1, n-1).Sub(t.Narrow(2, 0, n-1)).Unsqueeze(3)
	fm, dm := mid(feat), mid(t.Unsqueeze(3))
	density := mid(sigma).SubScalar(1).Softplus(1, 20)
	alpha := density.Mul(delta).Neg().Exp().RSubScalar(1)
	s := alpha.Shape()
	shifted := torch.Cat([]*torch.Tensor{torch.Ones([]int64{s[0], s[1], 1, 1}, torch.Float32, t.Device()), alpha.RSubScalar(1 + 1e-10)}, 2)
	trans := shifted.Cumprod(2).Narrow(2, 0, n-1)
	weights = alpha.Mul(trans) // [B,R,N-1,1]
	wsum := weights.Sum([]int64{2}, false)
	out.Feat = weights.Mul(fm).Sum([]int64{2}, false)
	out.WeightedDepth = weights.Mul(dm).Sum([]int64{2}, false)
	out.Depth = out.WeightedDepth.Div(wsum.AddScalar(1e-6))
	// Rays that hit nothing read the far bound, not 0.
	out.Depth = torch.Where(wsum.GtScalar(1e-3), out.Depth, torch.Full(out.Depth.Shape(), t.Select(2, n-1).MaxAll().Item(), torch.Float32, t.Device()))
	out.Weight = wsum
	return out, weights
}

// SamplePDF draws m depths per ray by inverse-transform sampling of the
// piecewise-constant pdf given by weights [B,R,K] over bins [B,R,K+1]
// (NeRF's hierarchical sampling). With rng nil the quantiles are evenly
// spaced; either way the returned depths are sorted.
func SamplePDF(bins, weights *torch.Tensor, m int, rng *torch.Generator) *torch.Tensor {
	return samplePDF(bins, weights, m, RenderOpts{Rng: rng}.jitter(bins.Device()), 0.01)
}

// jitter draws uniform sample jitter of a shape from o.Rng (the rank's
// rows of the whole batch's under o.Rows); nil without o.Rng.
func (o RenderOpts) jitter(dev torch.Device) func(shape []int64) *torch.Tensor {
	if o.Rng == nil {
		return nil
	}
	return func(shape []int64) *torch.Tensor {
		return o.Rows.Draw(shape, func(s []int64) *torch.Tensor { return torch.Rand(o.Rng, s, torch.Float32, dev) })
	}
}

// samplePDF is SamplePDF with the weights' floor eps (NVlabs: 1e-5 after
// its own smoothing) and the jitter's source (nil: ½).
func samplePDF(bins, weights *torch.Tensor, m int, jitter func([]int64) *torch.Tensor, eps float64) *torch.Tensor {
	s := weights.Shape()
	b, r, k := s[0], s[1], s[2]
	w := weights.AddScalar(eps)
	pdf := w.Div(w.Sum([]int64{2}, true))
	cdf := torch.Cat([]*torch.Tensor{torch.Zeros([]int64{b, r, 1}, torch.Float32, w.Device()), pdf.Cumsum(2)}, 2).Clamp(0, 1) // [B,R,K+1]
	mm := int64(m)
	base := torch.Arange(0, float64(m), 1, torch.Float32, w.Device()).Reshape(1, 1, mm).Expand(b, r, mm)
	var jit *torch.Tensor
	if jitter != nil {
		jit = jitter([]int64{b, r, mm})
	} else {
		jit = torch.Full([]int64{b, r, mm}, 0.5, torch.Float32, w.Device())
	}
	u := base.Add(jit).DivScalar(float64(m)).Contiguous()
	inds := torch.SearchSorted(cdf.Contiguous(), u, true)
	below := inds.SubScalar(1).Clamp(0, float64(k)).To(torch.Int64)
	above := inds.Clamp(0, float64(k)).To(torch.Int64)
	cb, ca := cdf.Gather(2, below), cdf.Gather(2, above)
	bb, ba := bins.Gather(2, below), bins.Gather(2, above)
	denom := ca.Sub(cb)
	denom = torch.Where(denom.LtScalar(1e-5), torch.Ones(denom.Shape(), torch.Float32, denom.Device()), denom)
	return bb.Add(u.Sub(cb).Div(denom).Mul(ba.Sub(bb)))
}

// mergeSorted merges two depth-sorted sample sets along dim 2 without a
// sort op: each element's merged position is its own index plus the number
// of elements of the other set before it (SearchSorted), and values are
// scattered there. ta [B,R,N], tb [B,R,M] sorted; xs pairs of [B,R,·,F].
func mergeSorted(ta, tb *torch.Tensor, xa, xb []*torch.Tensor) (*torch.Tensor, []*torch.Tensor) {
	n, m := ta.Size(2), tb.Size(2)
	b, r := ta.Size(0), ta.Size(1)
	ia := torch.Arange(0, float64(n), 1, torch.Int64, ta.Device()).Reshape(1, 1, n).Expand(b, r, n)
	ib := torch.Arange(0, float64(m), 1, torch.Int64, ta.Device()).Reshape(1, 1, m).Expand(b, r, m)
	ta, tb = ta.Contiguous(), tb.Contiguous()
	pa := ia.Add(torch.SearchSorted(tb, ta, true))
	pb := ib.Add(torch.SearchSorted(ta, tb, false))
	pos := torch.Cat([]*torch.Tensor{pa, pb}, 2)
	scatter := func(a, bb *torch.Tensor) *torch.Tensor {
		v := torch.Cat([]*torch.Tensor{a, bb}, 2)
		idx := pos
		if v.Dim() == 4 {
			idx = pos.Unsqueeze(3).Expand(b, r, n+m, v.Size(3))
		}
		return torch.Zeros(v.Shape(), v.DType(), v.Device()).ScatterAdd(2, idx, v)
	}
	t := scatter(ta, tb)
	out := make([]*torch.Tensor, len(xa))
	for i := range xa {
		out[i] = scatter(xa[i], xb[i])
	}
	return t, out
}

// Render volume-renders field along the rays: stratified samples, then
// importance samples from the coarse weights, merged and re-marched
// (EG3D's ImportanceRenderer).
func Render(f Field, origins, dirs *torch.Tensor, o RenderOpts) Rendered {
	b, r := origins.Size(0), origins.Size(1)
	t := stratified(b, r, o, origins.Device())
	sigma, feat := query(f, origins, dirs, t)
	out, w := RayMarch(t, sigma, feat)
	if o.Importance == 0 {
		return out
	}
	var tf *torch.Tensor
	torch.NoGrad(func() {
		n := t.Size(2)
		bins := t.Narrow(2, 0, n-1).Add(t.Narrow(2, 1, n-1)).MulScalar(0.5) // midpoints, K+1 = N-1
		if o.EG3D {
			tf = samplePDFEG3D(bins, w.Detach().Squeeze(3), o.Importance, o.jitter(bins.Device())).Detach()
			return
		}
		ww := w.Detach().Squeeze(3).Narrow(2, 1, n-2)
		tf = samplePDF(bins, ww, o.Importance, o.jitter(bins.Device()), 0.01).Detach()
	})
	sf, ff := query(f, origins, dirs, tf)
	tAll, xs := mergeSorted(t, tf, []*torch.Tensor{sigma, feat}, []*torch.Tensor{sf, ff})
	out, _ = RayMarch(tAll, xs[0], xs[1])
	if o.EG3D {
		out.near, out.far = tAll.MinAll().Item(), tAll.MaxAll().Item()
		out.Depth = clampedDepth(out)
	}
	return out
}

// RenderChunks is Render over chunks of at most n rays, freeing each
// chunk's samples before the next: full-size inference (EG3D-512 decodes
// 128² rays × 96 samples) in bounded memory. The result equals Render's;
// NVlabs' depth clamp still spans the whole batch.
func RenderChunks(f Field, origins, dirs *torch.Tensor, o RenderOpts, n int64) Rendered {
	rays := origins.Size(1)
	if rays <= n {
		return Render(f, origins, dirs, o)
	}
	var feat, depth, weight, wdepth []*torch.Tensor
	near, far := math.Inf(1), math.Inf(-1)
	for i := int64(0); i < rays; i += n {
		k := min(n, rays-i)
		s := torch.NewScope()
		r := Render(f, origins.Narrow(1, i, k), dirs.Narrow(1, i, k), o)
		s.Keep(r.Feat, r.Depth, r.Weight, r.WeightedDepth)
		s.Close()
		feat, depth, weight, wdepth = append(feat, r.Feat), append(depth, r.Depth), append(weight, r.Weight), append(wdepth, r.WeightedDepth)
		near, far = math.Min(near, r.near), math.Max(far, r.far)
	}
	out := Rendered{Feat: torch.Cat(feat, 1), Depth: torch.Cat(depth, 1), Weight: torch.Cat(weight, 1), WeightedDepth: torch.Cat(wdepth, 1)}
	if o.EG3D {
		out.near, out.far = near, far
		out.Depth = clampedDepth(out)
	}
	return out
}

// SamplePDFEG3D is NVlabs' importance sampling: the coarse weights
// [B,R,N−1] are smoothed by a max-pool (2, stride 1, pad 1) and an
// average-pool (2, stride 1), floored at 0.01, and the inner N−3 of them
// weigh the first N−2 midpoint bins (of bins [B,R,N−1]).
func SamplePDFEG3D(bins, weights *torch.Tensor, m int, rng *torch.Generator) *torch.Tensor {
	return samplePDFEG3D(bins, weights, m, RenderOpts{Rng: rng}.jitter(bins.Device()))
}

func samplePDFEG3D(bins, weights *torch.Tensor, m int, jitter func([]int64) *torch.Tensor) *torch.Tensor {
	k := weights.Size(2)
	first, last := weights.Narrow(2, 0, 1), weights.Narrow(2, k-1, 1)
	inner := weights.Narrow(2, 0, k-1).Maximum(weights.Narrow(2, 1, k-1))
	mp := torch.Cat([]*torch.Tensor{first, inner, last}, 2)                         // max_pool1d: K+1
	sm := mp.Narrow(2, 0, k).Add(mp.Narrow(2, 1, k)).MulScalar(0.5).AddScalar(0.01) // avg_pool1d: K
	return samplePDF(bins.Narrow(2, 0, k-1), sm.Narrow(2, 1, k-2), m, jitter, 1e-5)
}

// clampedDepth is NVlabs' depth: Σwᵢzᵢ/Σwᵢ (∞ where nothing was hit),
// clamped to the smallest and largest sample depth of the whole batch.
func clampedDepth(out Rendered) *torch.Tensor {
	w := out.Weight
	hit := w.GtScalar(0)
	safe := torch.Where(hit, w, torch.Ones(w.Shape(), torch.Float32, w.Device()))
	far := torch.Full(w.Shape(), out.far, torch.Float32, w.Device())
	return torch.Where(hit, out.WeightedDepth.Div(safe), far).Clamp(out.near, out.far)
}
