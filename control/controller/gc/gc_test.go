package gc

import (
	"context"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
)

func TestExpireEventsDeletesOnlyOldEvents(t *testing.T) {
	srv, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli := srv.Client()
	ctx := t.Context()
	now := time.Now().UTC()
	for name, last := range map[string]time.Time{"old": now.Add(-2 * time.Hour), "recent": now.Add(-time.Minute)} {
		e := &api.Event{
			Metadata:       api.ObjectMeta{Name: name, Namespace: "default"},
			InvolvedObject: api.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p"},
			Type:           api.EventNormal, Reason: "Test", Message: name, LastTimestamp: last, FirstTimestamp: last,
		}
		if err := cli.Create(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	kind := func(n string) api.KindInfo { ki, _ := api.LookupKind(n); return ki }
	g := New(cli, nil, nil, client.NewInformer(cli, kind("Namespace"), client.InformerOptions{}), Options{EventTTL: time.Hour, Now: func() time.Time { return now }})
	g.ExpireEvents(context.Background())
	var l api.EventList
	if err := cli.List(ctx, &l, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 || l.Items[0].Metadata.Name != "recent" {
		t.Fatalf("events left: %+v, want only the recent one", l.Items)
	}
}
