package fake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-io/berth/nodeagent/runtime"
	"github.com/berth-io/berth/nodeagent/runtime/fake"
)

func spec(image string) runtime.ContainerSpec {
	return runtime.ContainerSpec{
		Meta:  runtime.Meta{PodNamespace: "default", PodName: "web-1", PodUID: "u1", ContainerName: "web"},
		Image: image,
	}
}

func TestPullFailuresCarryTheReasonTheAgentReports(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(f *fake.Runtime)
		wantReason runtime.Reason
		notFound   bool
	}{
		{"unknown image", func(f *fake.Runtime) {}, runtime.ReasonImageNotFound, true},
		{"refused credentials", func(f *fake.Runtime) {
			f.AddRegistryImage("r/web:v1")
			f.FailPull("r/web:v1", fake.PullError("r/web:v1", runtime.ReasonRegistryUnauthorized))
		}, runtime.ReasonRegistryUnauthorized, false},
		{"registry down", func(f *fake.Runtime) {
			f.FailPull("r/web:v1", fake.PullError("r/web:v1", runtime.ReasonRegistryUnavailable))
		}, runtime.ReasonRegistryUnavailable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.New()
			defer f.Close()
			tt.setup(f)
			_, err := f.PullImage(t.Context(), "r/web:v1", runtime.PullOptions{})
			if !errors.Is(err, runtime.ErrImagePull) {
				t.Fatalf("error %v does not match ErrImagePull", err)
			}
			if got := runtime.ReasonOf(err); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
			if got := errors.Is(err, runtime.ErrImageNotFound); got != tt.notFound {
				t.Errorf("errors.Is(err, ErrImageNotFound) = %v, want %v", got, tt.notFound)
			}
		})
	}
}

func TestCreateNeedsTheImageOnTheNode(t *testing.T) {
	f := fake.New()
	defer f.Close()
	if _, err := f.CreateContainer(t.Context(), spec("r/web:v1")); !errors.Is(err, runtime.ErrImageNotFound) {
		t.Fatalf("create before pull: error %v, want ErrImageNotFound", err)
	}
	f.AddRegistryImage("r/web:v1")
	if _, err := f.PullImage(t.Context(), "r/web:v1", runtime.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CreateContainer(t.Context(), spec("r/web:v1")); err != nil {
		t.Fatalf("create after pull: %v", err)
	}
}

func TestExitOfARunningContainerIsReportedOnceAsAnEvent(t *testing.T) {
	f := fake.New()
	defer f.Close()
	f.AddImage("web")
	id, err := runtime.RunContainer(t.Context(), f, spec("web"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := f.ContainerStatus(t.Context(), id); st.Status != runtime.StatusRunning {
		t.Fatalf("status after start %s, want Running", st.Status)
	}
	if err := f.Exit(id, 3); err != nil {
		t.Fatal(err)
	}
	ev := <-f.Events()
	if ev.ID != id || ev.ExitCode != 3 || ev.Meta.PodName != "web-1" {
		t.Errorf("event %+v, want container %s exit 3 of pod web-1", ev, id)
	}
	st, err := f.ContainerStatus(t.Context(), id)
	if err != nil || st.Status != runtime.StatusExited || st.ExitCode != 3 {
		t.Errorf("status %+v (%v), want Exited with code 3", st, err)
	}
	if err := f.Exit(id, 4); err == nil {
		t.Errorf("a container that already exited exited again")
	}
}

func TestStopHonoursOrIgnoresTermAsConfigured(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		f := fake.New()
		f.AddImage("web")
		f.IgnoreTerm("web", ignore)
		id, err := runtime.RunContainer(t.Context(), f, spec("web"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.StopContainer(t.Context(), id, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		ev := <-f.Events()
		want := int32(143)
		if ignore {
			want = 137
		}
		if ev.ExitCode != want {
			t.Errorf("ignore TERM %v: exit code %d, want %d", ignore, ev.ExitCode, want)
		}
		stops := f.Stops()
		if len(stops) != 1 || stops[0].Grace != 5*time.Second || stops[0].Killed != ignore {
			t.Errorf("ignore TERM %v: stops %+v", ignore, stops)
		}
		f.Close()
	}
}

func TestAFailedStartLeavesNoContainerBehind(t *testing.T) {
	f := fake.New()
	defer f.Close()
	f.AddImage("web")
	f.FailStart("web", fake.ExecutableNotFound("x", "/nope"))
	_, err := runtime.RunContainer(t.Context(), f, spec("web"))
	if !errors.Is(err, runtime.ErrContainerCreate) || runtime.ReasonOf(err) != runtime.ReasonExecutableNotFound {
		t.Fatalf("error %v (reason %q), want ErrContainerCreate with ExecutableNotFound", err, runtime.ReasonOf(err))
	}
	list, err := f.ListContainers(t.Context())
	if err != nil || len(list) != 0 {
		t.Errorf("containers after a failed run: %+v (%v), want none", list, err)
	}
}

func TestReopenedRuntimeAdoptsRunningContainersAndHearsTheirExit(t *testing.T) {
	f := fake.New()
	f.AddImage("web")
	id, err := runtime.RunContainer(t.Context(), f, spec("web"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	g := f.Reopen()
	defer g.Close()
	list, err := g.ListContainers(t.Context())
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].State.Status != runtime.StatusRunning {
		t.Fatalf("list after reopen %+v (%v), want %s running", list, err, id)
	}
	if err := g.Exit(id, 0); err != nil {
		t.Fatal(err)
	}
	if ev := <-g.Events(); ev.ID != id {
		t.Errorf("event for %s, want %s", ev.ID, id)
	}
	if _, ok := <-f.Events(); ok {
		t.Errorf("the closed runtime still delivered an event")
	}
}

func TestExecAnswersWhatTheTestSays(t *testing.T) {
	f := fake.New()
	defer f.Close()
	f.AddImage("web")
	id, err := runtime.RunContainer(t.Context(), f, spec("web"))
	if err != nil {
		t.Fatal(err)
	}
	f.SetExec(func(_ string, cmd []string) (int, []byte, error) {
		if cmd[0] == "check" {
			return 1, []byte("unhealthy"), nil
		}
		return 0, nil, nil
	})
	code, out, err := f.Exec(t.Context(), id, []string{"check"}, time.Second)
	if err != nil || code != 1 || string(out) != "unhealthy" {
		t.Errorf("exec = %d %q %v, want 1 \"unhealthy\" nil", code, out, err)
	}
}

func TestCallsAfterCloseFail(t *testing.T) {
	f := fake.New()
	f.Close()
	if _, err := f.Version(context.Background()); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("version after close: %v, want ErrClosed", err)
	}
}

func TestShortAndFullImageNamesMeanTheSameImageAsOnARealNode(t *testing.T) {
	f := fake.New()
	defer f.Close()
	f.AddRegistryImage("nginx:1.25")
	img, err := f.PullImage(t.Context(), "docker.io/library/nginx:1.25", runtime.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Ref != "docker.io/library/nginx:1.25" {
		t.Errorf("pulled ref %q, want the normalised name", img.Ref)
	}
	if _, err := f.CreateContainer(t.Context(), spec("nginx:1.25")); err != nil {
		t.Errorf("create by short name after pulling by full name: %v", err)
	}
	if _, err := f.PullImage(t.Context(), "Not/Valid:", runtime.PullOptions{}); runtime.ReasonOf(err) != runtime.ReasonInvalidImageName {
		t.Errorf("pull of an unparsable reference: %v, want reason InvalidImageName", err)
	}
}
