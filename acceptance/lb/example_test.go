package lb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/berth-io/berth/acceptance/lb"
)

// The balancer stands in front of node ports; clients only know its address.
func Example() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from the backend")
	}))
	defer backend.Close()

	bal, err := lb.New(lb.Config{
		Backends:    []string{backend.Listener.Addr().String()},
		HealthCheck: lb.HealthCheck{HTTPPath: "/", Interval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bal.Serve(ctx, l) }()
	if err := bal.Wait(ctx, lb.AllHealthy); err != nil {
		panic(err)
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))
	fmt.Println("connections to the backend:", bal.Backends()[0].Connections)

	cancel()
	fmt.Println("serve:", <-done)
	// Output:
	// hello from the backend
	// connections to the backend: 1
	// serve: <nil>
}
