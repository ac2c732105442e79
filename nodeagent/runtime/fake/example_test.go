package fake_test

import (
	"context"
	"fmt"

	"github.com/berth-io/berth/nodeagent/runtime"
	"github.com/berth-io/berth/nodeagent/runtime/fake"
)

// An agent unit test makes a container crash and sees the exit the way
// the agent would, without containerd.
func Example() {
	ctx := context.Background()
	rt := fake.New()
	defer rt.Close()
	rt.AddRegistryImage("registry.test/web:v1")
	rt.ExitOnStart("registry.test/web:v1", 3)

	img, err := rt.PullImage(ctx, "registry.test/web:v1", runtime.PullOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	id, err := runtime.RunContainer(ctx, rt, runtime.ContainerSpec{
		Meta:  runtime.Meta{PodNamespace: "default", PodName: "web-1", ContainerName: "web"},
		Image: img.Ref,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := <-rt.Events()
	fmt.Println(ev.ID == id, ev.Meta.PodName, ev.ExitCode)
	fmt.Println(rt.Calls())
	// Output:
	// true web-1 3
	// [pull registry.test/web:v1 create web-1/web start fake000001]
}
