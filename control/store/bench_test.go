package store

import (
	"fmt"
	"testing"

	"github.com/berth-io/berth/control/api"
)

func BenchmarkCreate(b *testing.B) {
	s := newStore(b)
	ctx := testCtx(b)
	i := 0
	for b.Loop() {
		if err := s.Create(ctx, newPod("default", fmt.Sprintf("p%d", i), map[string]string{"app": "web"})); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkList10k(b *testing.B) {
	s := newStore(b)
	ctx := testCtx(b)
	const n = 10000
	ops := make([]func() error, 0, n)
	for i := range n {
		p := newPod(fmt.Sprintf("ns%d", i%10), fmt.Sprintf("p%05d", i), map[string]string{"app": "web", "i": fmt.Sprint(i)})
		p.Spec.NodeName = fmt.Sprintf("n%d", i%50)
		ops = append(ops, func() error { return s.Create(ctx, p) })
	}
	// Create concurrently so setup does not dominate the run.
	errs := make(chan error, 16)
	work := make(chan func() error)
	for range 16 {
		go func() {
			var first error
			for op := range work {
				if err := op(); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for _, op := range ops {
		work <- op
	}
	close(work)
	for range 16 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		var list api.PodList
		if err := s.List(ctx, &list, ListOptions{}); err != nil {
			b.Fatal(err)
		}
		if len(list.Items) != n {
			b.Fatalf("listed %d pods, want %d", len(list.Items), n)
		}
	}
}
