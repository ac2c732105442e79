package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type tokenRecord struct {
	Node string `json:"node"`
	Uses int    `json:"uses"`
}

// waitAuxGone polls until the record is absent; the test deadline bounds
// it, so a record that never goes fails the test instead of hanging it.
func waitAuxGone(ctx context.Context, t *testing.T, s *Store, key string) {
	t.Helper()
	for {
		var v json.RawMessage
		found, err := s.GetAux(ctx, key, &v)
		if err != nil {
			t.Fatalf("get aux %q: %v", key, err)
		}
		if !found {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("aux record %q still present at the test deadline", key)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestIntegrationAuxPutGetListDelete(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	if err := s.PutAux(ctx, "tokens/a", tokenRecord{Node: "n1"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAux(ctx, "tokens/b", tokenRecord{Node: "n2"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAux(ctx, "clusterID", "c-123", 0); err != nil {
		t.Fatal(err)
	}
	var got tokenRecord
	if found, err := s.GetAux(ctx, "tokens/a", &got); err != nil || !found || got.Node != "n1" {
		t.Errorf("get tokens/a = %+v, %v, %v; want n1", got, found, err)
	}
	if found, err := s.GetAux(ctx, "tokens/absent", &got); err != nil || found {
		t.Errorf("get absent = %v, %v; want not found", found, err)
	}
	all, err := s.ListAux(ctx, "tokens/")
	if err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(all)); !slices.Equal(keys, []string{"tokens/a", "tokens/b"}) {
		t.Errorf("list tokens/ keys = %v, want tokens/a and tokens/b", keys)
	}
	if string(all["tokens/b"]) != `{"node":"n2","uses":0}` {
		t.Errorf("tokens/b = %s", all["tokens/b"])
	}
	if err := s.DeleteAux(ctx, "tokens/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAux(ctx, "tokens/a"); err != nil {
		t.Errorf("deleting an absent record: %v, want nil", err)
	}
	if found, _ := s.GetAux(ctx, "tokens/a", &got); found {
		t.Error("tokens/a still present after delete")
	}
}

func TestIntegrationCreateAuxOnlyWhenAbsent(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		value string
		want  bool
	}{{"first", true}, {"second", false}} {
		created, err := s.CreateAux(ctx, "clusterID", tc.value, 0)
		if err != nil || created != tc.want {
			t.Errorf("CreateAux(%q) = %v, %v; want %v", tc.value, created, err, tc.want)
		}
	}
	var v string
	if _, err := s.GetAux(ctx, "clusterID", &v); err != nil || v != "first" {
		t.Errorf("clusterID = %q, %v; want first", v, err)
	}
}

func TestIntegrationAuxRecordWithTTLExpires(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	if err := s.PutAux(ctx, "tokens/short", tokenRecord{Node: "n1"}, time.Second); err != nil {
		t.Fatal(err)
	}
	if created, err := s.CreateAux(ctx, "tokens/short2", tokenRecord{Node: "n2"}, time.Second); err != nil || !created {
		t.Fatalf("create with ttl: %v, %v", created, err)
	}
	waitAuxGone(ctx, t, s, "tokens/short")
	waitAuxGone(ctx, t, s, "tokens/short2")
}

func TestIntegrationConsumeAuxHasExactlyOneWinner(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	for round := range 20 {
		key := fmt.Sprintf("tokens/t%d", round)
		if err := s.PutAux(ctx, key, tokenRecord{Node: "n1", Uses: round}, 0); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make([]bool, 2)
		values := make([]tokenRecord, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() { results[i], errs[i] = s.ConsumeAux(ctx, key, &values[i]) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if results[0] == results[1] {
			t.Fatalf("round %d: consumers found %v, want exactly one winner", round, results)
		}
		winner := values[0]
		if results[1] {
			winner = values[1]
		}
		if winner.Uses != round {
			t.Errorf("round %d: the winner read %+v", round, winner)
		}
	}
	var v tokenRecord
	if found, err := s.ConsumeAux(ctx, "tokens/t0", &v); err != nil || found {
		t.Errorf("consuming a used token: %v, %v; want not found", found, err)
	}
}

func TestIntegrationWatchAuxSeesPutsAndDeletes(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.WatchAux(wctx, "endpoints/")
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { return s.PutAux(ctx, "endpoints/cp1", "https://198.18.0.2:6443", 0) },
		func() error { return s.PutAux(ctx, "other", "ignored", 0) },
		func() error { return s.DeleteAux(ctx, "endpoints/cp1") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for range 2 {
		select {
		case e := <-ch:
			got = append(got, fmt.Sprintf("%s %s deleted=%v", e.Key, e.Value, e.Deleted))
		case <-ctx.Done():
			t.Fatal("no aux event before the test deadline")
		}
	}
	want := []string{`endpoints/cp1 "https://198.18.0.2:6443" deleted=false`, "endpoints/cp1  deleted=true"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	cancel()
	for range ch {
	}
}

func TestIntegrationKeepAuxRepublishesALostLeaseAndRemovesTheRecordWhenContextEnds(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const url = "https://198.18.0.2:6443"
	if err := s.KeepAux(kctx, "endpoints/cp1", url, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var v string
	if found, err := s.GetAux(ctx, "endpoints/cp1", &v); err != nil || !found || v != url {
		t.Fatalf("published endpoint = %q, %v, %v", v, found, err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ch, err := s.WatchAux(wctx, "endpoints/")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Get(ctx, s.auxRoot()+"endpoints/cp1")
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("read published key: %v", err)
	}
	// Losing the lease (as after a long partition) removes the record;
	// KeepAux notices and publishes it again under a new lease.
	if _, err := s.Client().Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 2 {
		select {
		case e := <-ch:
			got = append(got, fmt.Sprintf("%s %s deleted=%v", e.Key, e.Value, e.Deleted))
		case <-ctx.Done():
			t.Fatalf("events so far %q: no more before the test deadline", got)
		}
	}
	want := []string{"endpoints/cp1  deleted=true", `endpoints/cp1 "` + url + `" deleted=false`}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	cancel()
	waitAuxGone(ctx, t, s, "endpoints/cp1")
}

func TestAuxOperationsRejectAnEmptyKey(t *testing.T) {
	s := New(nil, Options{}) // never reaches etcd
	ctx := context.Background()
	var v any
	for name, op := range map[string]func() error{
		"PutAux":     func() error { return s.PutAux(ctx, "", 1, 0) },
		"GetAux":     func() error { _, err := s.GetAux(ctx, "", &v); return err },
		"CreateAux":  func() error { _, err := s.CreateAux(ctx, "", 1, 0); return err },
		"ConsumeAux": func() error { _, err := s.ConsumeAux(ctx, "", &v); return err },
		"DeleteAux":  func() error { return s.DeleteAux(ctx, "") },
		"KeepAux":    func() error { return s.KeepAux(ctx, "", 1, time.Second) },
	} {
		if err := op(); err == nil {
			t.Errorf("%s with an empty key succeeded", name)
		}
	}
}
