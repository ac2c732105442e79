package store

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/berth-io/berth/control/api"
)

// cidrs yields 10.244.<i>.0/24 for i in [0, n).
func cidrs(n int) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for i := range n {
			if !yield(fmt.Sprintf("10.244.%d.0/24", i)) {
				return
			}
		}
	}
}

func TestIntegrationReserveIsIdempotentForItsOwnerOnly(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name, value, owner string
		reason             api.Reason
	}{
		{"free value", "10.96.0.10", "default/dns", ""},
		{"same owner again", "10.96.0.10", "default/dns", ""},
		{"another owner", "10.96.0.10", "default/web", api.ReasonAlreadyExists},
		{"another value", "10.96.0.11", "default/web", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Reserve(ctx, "service-ips", tc.value, tc.owner)
			if api.ReasonOf(err) != tc.reason || (tc.reason == "" && err != nil) {
				t.Fatalf("reserve: %v, want reason %q", err, tc.reason)
			}
			if err != nil && !strings.Contains(err.Error(), "default/dns") {
				t.Errorf("error %q does not name the current owner", err)
			}
		})
	}
	got, err := s.Reserved(ctx, "service-ips")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"10.96.0.10": "default/dns", "10.96.0.11": "default/web"}
	if !maps.Equal(got, want) {
		t.Errorf("reserved = %v, want %v", got, want)
	}
}

func TestIntegrationAllocateTakesFirstFreeAndReportsExhaustion(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	const pool = "pod-cidrs"
	if err := s.Reserve(ctx, pool, "10.244.1.0/24", "n-old"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		owner     string
		release   string
		want      string
		exhausted bool
	}{
		{owner: "n1", want: "10.244.0.0/24"},
		{owner: "n2", want: "10.244.2.0/24"},
		{owner: "n3", exhausted: true},
		{owner: "n1", want: "10.244.0.0/24"}, // a retry gets the same value
		{owner: "n3", release: "10.244.1.0/24", want: "10.244.1.0/24"},
	} {
		if step.release != "" {
			if err := s.Release(ctx, pool, step.release); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Allocate(ctx, pool, cidrs(3), step.owner)
		if step.exhausted {
			if !errors.Is(err, ErrExhausted) {
				t.Errorf("allocate for %s = %q, %v; want ErrExhausted", step.owner, got, err)
			}
			continue
		}
		if err != nil || got != step.want {
			t.Errorf("allocate for %s = %q, %v; want %s", step.owner, got, err, step.want)
		}
	}
	got, err := s.Reserved(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"10.244.0.0/24": "n1", "10.244.1.0/24": "n3", "10.244.2.0/24": "n2"}
	if !maps.Equal(got, want) {
		t.Errorf("reserved = %v, want %v", got, want)
	}
	if err := s.Release(ctx, pool, "10.244.9.0/24"); err != nil {
		t.Errorf("releasing a free value: %v", err)
	}
}

func TestIntegrationConcurrentAllocationNeverGivesOneValueToTwoOwners(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	const pool, size, workers, each = "node-ports", 30, 8, 5
	ports := func(yield func(string) bool) {
		for p := 30000; p < 30000+size; p++ {
			if !yield(fmt.Sprint(p)) {
				return
			}
		}
	}
	var mu sync.Mutex
	given := map[string]string{} // value -> owner
	exhausted := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				owner := fmt.Sprintf("svc-%d-%d", w, i)
				v, err := s.Allocate(ctx, pool, ports, owner)
				mu.Lock()
				switch {
				case errors.Is(err, ErrExhausted):
					exhausted++
				case err != nil:
					t.Errorf("allocate for %s: %v", owner, err)
				case given[v] != "":
					t.Errorf("%s given to both %s and %s", v, given[v], owner)
				default:
					given[v] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(given) != size || exhausted != workers*each-size {
		t.Errorf("%d values given and %d allocations exhausted; want %d and %d", len(given), exhausted, size, workers*each-size)
	}
	stored, err := s.Reserved(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(stored, given) {
		t.Errorf("stored reservations %v differ from the values handed out %v", stored, given)
	}
}

func TestPoolNamesMustBeOneKeySegment(t *testing.T) {
	s := New(nil, Options{}) // never reaches etcd
	for _, pool := range []string{"", "a/b"} {
		if err := s.Reserve(t.Context(), pool, "v", "o"); err == nil {
			t.Errorf("pool %q accepted", pool)
		}
	}
	if err := s.Reserve(t.Context(), "p", "", "o"); err == nil {
		t.Error("empty value accepted")
	}
}
