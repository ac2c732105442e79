package store_test

import (
	"context"
	"fmt"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A controller keeps a cache of pods bound to its node: list once, then
// watch from the list's resourceVersion, and start over when told Gone.
func ExampleStore_Watch() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	s := store.New(cli, store.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	onNode := func(o api.Object) bool { return o.(*api.Pod).Spec.NodeName == "n1" }
	cache := map[string]*api.Pod{}
	for ctx.Err() == nil {
		var list api.PodList
		if err := s.List(ctx, &list, store.ListOptions{Filter: onNode}); err != nil {
			fmt.Println(err)
			return
		}
		clear(cache)
		for i := range list.Items {
			cache[api.Key(&list.Items[i])] = &list.Items[i]
		}
		events, err := s.Watch(ctx, api.KindOf(&api.Pod{}), store.WatchOptions{Filter: onNode, FromRevision: list.ResourceVersion})
		if err != nil {
			fmt.Println(err)
			return
		}
		for e := range events {
			switch e.Type {
			case api.Added, api.Modified:
				cache[api.Key(e.Object)] = e.Object.(*api.Pod)
			case api.Deleted:
				delete(cache, api.Key(e.Object))
			case api.Error:
				if !api.IsGone(e.Err) {
					fmt.Println(e.Err)
				}
			}
		}
		// The channel closed: the context ended, or the watch must restart
		// from a fresh list.
	}
}

// Writers change objects with a read-modify-write loop that retries on
// Conflict, so concurrent writers never lose each other's changes.
func ExampleStore_GuaranteedUpdate() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	s := store.New(cli, store.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	node := &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}
	err = s.GuaranteedUpdate(ctx, node, false, func() error {
		node.Spec.Unschedulable = true // cordon
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
}
