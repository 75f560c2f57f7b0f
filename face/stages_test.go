package face_test

import (
	"testing"
	"time"

	"ddgi/face"
	"ddgi/imagebatch"
	"ddgi/inversion"
	"ddgi/torch"
)

// BenchmarkGenerateStages splits one 2D generation into its stages: text
// encoder, the U-Net + ControlNet pass (E), M and T (G is in Generate2D),
// with the threading Pipeline.Codes uses for one request.
func BenchmarkGenerateStages(b *testing.B) {
	p := benchPipeline(b, "stylegan2")
	req := maskRequest(p)
	var te, tm, tt, tx time.Duration
	for i := 0; i < b.N; i++ {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				face.WithBatchThreads(1, p.Size(), func() {
					cond := inversion.Condition{Kind: "mask", Mask: imagebatch.Labels([][]uint8{req.Mask}, p.Size())}
					zt := p.E.Prior(1, torch.NewGenerator(1))
					steps := torch.FromInt64([]int64{999}, 1)
					ta := time.Now()
					ids2, _ := p.E.Text.IDs([]string{req.Text})
					p.E.Text.Enc.Forward(ids2)
					tx += time.Since(ta)
					t0 := time.Now()
					h, f := p.E.Features(zt, steps, []string{req.Text}, cond)
					t1 := time.Now()
					p.Model.Mapping.MappedCode(h)
					t2 := time.Now()
					p.Model.AbSMNet.ModulationCodes(f, steps)
					t3 := time.Now()
					te += t1.Sub(t0)
					tm += t2.Sub(t1)
					tt += t3.Sub(t2)
				})
			})
		})
	}
	b.ReportMetric(float64(te.Milliseconds())/float64(b.N), "ms-E")
	b.ReportMetric(float64(tx.Milliseconds())/float64(b.N), "ms-text")
	b.ReportMetric(float64(tm.Milliseconds())/float64(b.N), "ms-M")
	b.ReportMetric(float64(tt.Milliseconds())/float64(b.N), "ms-T")
}
