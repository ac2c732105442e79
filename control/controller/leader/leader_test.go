package leader

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// leaseStore is an in-memory API holding leases with resourceVersion
// compare-and-swap; a client of it can be cut off.
type leaseStore struct {
	mu    sync.Mutex
	rv    int64
	lease *api.Lease
}

type storeClient struct {
	s   *leaseStore
	cut atomic.Bool
}

var errCut = errors.New("connection refused")

func (c *storeClient) Get(_ context.Context, ns, name string, obj api.Object) error {
	if c.cut.Load() {
		return errCut
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.lease == nil {
		return api.NewNotFound("Lease", ns+"/"+name)
	}
	*obj.(*api.Lease) = *client.DeepCopy(c.s.lease)
	return nil
}

func (c *storeClient) Create(_ context.Context, obj api.Object) error {
	if c.cut.Load() {
		return errCut
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.lease != nil {
		return api.NewAlreadyExists("Lease", "x")
	}
	c.s.rv++
	obj.GetMeta().ResourceVersion = c.s.rv
	c.s.lease = client.DeepCopy(obj.(*api.Lease))
	return nil
}

func (c *storeClient) Update(_ context.Context, obj api.Object) error {
	if c.cut.Load() {
		return errCut
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.lease == nil {
		return api.NewNotFound("Lease", "x")
	}
	if obj.GetMeta().ResourceVersion != c.s.lease.Metadata.ResourceVersion {
		return api.NewConflict("Lease", "x", obj.GetMeta().ResourceVersion, c.s.lease.Metadata.ResourceVersion)
	}
	c.s.rv++
	obj.GetMeta().ResourceVersion = c.s.rv
	c.s.lease = client.DeepCopy(obj.(*api.Lease))
	return nil
}

func TestCanAcquire(t *testing.T) {
	t0 := time.Unix(1000, 0)
	held := func(holder string, secs int32) *api.Lease {
		return &api.Lease{Spec: api.LeaseSpec{HolderIdentity: holder, LeaseDurationSeconds: secs}}
	}
	tests := []struct {
		name  string
		lease *api.Lease
		now   time.Time
		want  bool
	}{
		{"no lease yet is free", nil, t0, true},
		{"a released lease is free", held("", 10), t0, true},
		{"the holder may always renew", held("me", 10), t0, true},
		{"another's lease within its duration is not free", held("other", 10), t0.Add(9 * time.Second), false},
		{"another's lease exactly at expiry is not free", held("other", 10), t0.Add(10 * time.Second), false},
		{"another's lease after expiry is free", held("other", 10), t0.Add(10*time.Second + 1), true},
		{"a longer declared duration wins over ours", held("other", 30), t0.Add(20 * time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CanAcquire(tt.lease, "me", tt.now, t0, 10*time.Second); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// timeline records leadership changes in order, failing the test when two
// candidates lead at once.
type timeline struct {
	mu      sync.Mutex
	leaders map[string]bool
	log     []string
	t       *testing.T
}

func (tl *timeline) lead(id string) func(ctx context.Context) {
	return func(ctx context.Context) {
		tl.mu.Lock()
		for other, on := range tl.leaders {
			if on && other != id {
				tl.t.Errorf("%s started leading while %s leads", id, other)
			}
		}
		tl.leaders[id] = true
		tl.log = append(tl.log, "start "+id)
		tl.mu.Unlock()
		<-ctx.Done()
		tl.mu.Lock()
		tl.leaders[id] = false
		tl.log = append(tl.log, "stop "+id)
		tl.mu.Unlock()
	}
}

func (tl *timeline) current() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for id, on := range tl.leaders {
		if on {
			return id
		}
	}
	return ""
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func newCandidate(t *testing.T, s *leaseStore, id string) (*Elector, *storeClient) {
	t.Helper()
	c := &storeClient{s: s}
	e, err := New(c, Config{Identity: id, LeaseDuration: 400 * time.Millisecond, RenewDeadline: 200 * time.Millisecond, RetryPeriod: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

func TestOnlyOneLeadsAndTheOtherTakesOverWhenTheLeaderStops(t *testing.T) {
	s := &leaseStore{}
	tl := &timeline{leaders: map[string]bool{}, t: t}
	a, _ := newCandidate(t, s, "a")
	b, _ := newCandidate(t, s, "b")
	ctxA, stopA := context.WithCancel(t.Context())
	ctxB, stopB := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctxA, tl.lead("a")) })
	waitUntil(t, "a to lead", func() bool { return tl.current() == "a" })
	wg.Go(func() { b.Run(ctxB, tl.lead("b")) })
	// b keeps campaigning while a renews; a must stay the leader through
	// many of b's attempts.
	for range 10 {
		time.Sleep(20 * time.Millisecond)
		if tl.current() != "a" || b.IsLeader() {
			t.Fatal("b took the lease while a renewed it")
		}
	}
	stopA()
	waitUntil(t, "b to take over", func() bool { return tl.current() == "b" })
	stopB()
	wg.Wait()
	want := []string{"start a", "stop a", "start b", "stop b"}
	if len(tl.log) != len(want) {
		t.Fatalf("timeline %v, want %v", tl.log, want)
	}
	for i := range want {
		if tl.log[i] != want[i] {
			t.Fatalf("timeline %v, want %v", tl.log, want)
		}
	}
}

func TestALeaderThatCannotRenewStopsBeforeAnotherTakesOver(t *testing.T) {
	s := &leaseStore{}
	tl := &timeline{leaders: map[string]bool{}, t: t}
	a, ca := newCandidate(t, s, "a")
	b, _ := newCandidate(t, s, "b")
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx, tl.lead("a")) })
	waitUntil(t, "a to lead", func() bool { return tl.current() == "a" })
	wg.Go(func() { b.Run(ctx, tl.lead("b")) })
	ca.cut.Store(true) // a loses the API but keeps running
	waitUntil(t, "b to take over", func() bool { return tl.current() == "b" })
	stop()
	wg.Wait()
	// timeline.lead already fails the test on overlap; check the order too.
	if len(tl.log) < 3 || tl.log[0] != "start a" || tl.log[1] != "stop a" || tl.log[2] != "start b" {
		t.Fatalf("timeline %v: a must stop before b starts", tl.log)
	}
}

func TestConfigRejectsADeadlineNotShorterThanTheLease(t *testing.T) {
	_, err := New(&storeClient{s: &leaseStore{}}, Config{Identity: "a", LeaseDuration: time.Second, RenewDeadline: time.Second})
	if err == nil {
		t.Fatal("a renew deadline as long as the lease would let two leaders overlap")
	}
}
