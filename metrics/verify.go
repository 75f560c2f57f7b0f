// Package metrics computes ddgi's evaluation numbers: FID and KID on aux
// features, LPIPS with F, MS-SSIM, identity cosine with R, pixel accuracy
// and mIoU with the parser, attribute accuracy against the prompt, and the
// verification scores of the identity net.
package metrics

import (
	"math"
	"sort"
)

var nan = math.NaN()

// ROCAUC is the area under the ROC curve of scores (higher = positive),
// the probability a random positive outscores a random negative (ties ½).
func ROCAUC(scores []float64, positive []bool) float64 {
	idx := sortedIdx(scores)
	var nPos, nNeg, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avgRank := float64(i+j+1) / 2 // 1-based average rank of the tie
		for k := i; k < j; k++ {
			if positive[idx[k]] {
				rankSum += avgRank
				nPos++
			} else {
				nNeg++
			}
		}
		i = j
	}
	if nPos == 0 || nNeg == 0 {
		return nan
	}
	return (rankSum - nPos*(nPos+1)/2) / (nPos * nNeg)
}

func sortedIdx(s []float64) []int {
	idx := make([]int, len(s))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return s[idx[a]] < s[idx[b]] })
	return idx
}

// BestThreshold returns the threshold maximising accuracy of
// "score ≥ threshold ⇒ positive" on the given pairs, and that accuracy.
func BestThreshold(scores []float64, positive []bool) (thr, acc float64) {
	idx := sortedIdx(scores)
	var nPos int
	for _, p := range positive {
		if p {
			nPos++
		}
	}
	// Threshold below everything: all called positive.
	correct := nPos
	best, thr := correct, math.Inf(-1)
	for k, i := range idx {
		if positive[i] {
			correct--
		} else {
			correct++
		}
		if (k+1 == len(idx) || scores[idx[k+1]] != scores[i]) && correct > best {
			best = correct
			thr = scores[i] + 1e-9
			if k+1 < len(idx) {
				thr = (scores[i] + scores[idx[k+1]]) / 2
			}
		}
	}
	return thr, float64(best) / float64(len(scores))
}

// Accuracy at a fixed threshold.
func Accuracy(scores []float64, positive []bool, thr float64) float64 {
	var c int
	for i, s := range scores {
		if (s >= thr) == positive[i] {
			c++
		}
	}
	return float64(c) / float64(len(scores))
}

// TARAtFAR is the true-accept rate at the threshold whose false-accept rate
// on the negatives is at most far.
func TARAtFAR(scores []float64, positive []bool, far float64) float64 {
	var neg, pos []float64
	for i, s := range scores {
		if positive[i] {
			pos = append(pos, s)
		} else {
			neg = append(neg, s)
		}
	}
	if len(neg) == 0 || len(pos) == 0 {
		return nan
	}
	sort.Float64s(neg)
	k := int(math.Floor(far * float64(len(neg)))) // negatives allowed above
	thr := neg[len(neg)-1-min(k, len(neg)-1)]
	var tp int
	for _, s := range pos {
		if s > thr {
			tp++
		}
	}
	return float64(tp) / float64(len(pos))
}
