package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func validDeployment() *Deployment {
	return &Deployment{
		Metadata: ObjectMeta{Name: "web"},
		Spec: DeploymentSpec{
			Template: PodTemplate{
				Metadata: TemplateMeta{Labels: map[string]string{"app": "web"}},
				Spec: PodSpec{Containers: []Container{{
					Name:  "web",
					Image: "registry:5000/web:v1",
					Ports: []ContainerPort{{Name: "http", ContainerPort: 8080}, {ContainerPort: 9090}},
				}}},
			},
		},
	}
}

func TestValidateNamesTheFieldAndWhatIsAllowed(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(d *Deployment)
		want   string
	}{
		{"port out of range", func(d *Deployment) { d.Spec.Template.Spec.Containers[0].Ports[1].ContainerPort = 70000 },
			"spec.template.spec.containers[0].ports[1].containerPort: must be 1-65535, got 70000"},
		{"name not a DNS label", func(d *Deployment) { d.Metadata.Name = "Web_1" },
			`metadata.name: must be a DNS label`},
		{"image missing", func(d *Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" },
			"spec.template.spec.containers[0].image: is required"},
		{"selector does not match template", func(d *Deployment) { d.Spec.Selector = map[string]string{"app": "other"} },
			"spec.selector: must match the template's labels"},
		{"surge and unavailable both zero", func(d *Deployment) {
			z := FromInt(0)
			d.Spec.Strategy.MaxSurge, d.Spec.Strategy.MaxUnavailable = &z, &z
		}, "spec.strategy: maxSurge and maxUnavailable must not both be 0"},
		{"bad percentage", func(d *Deployment) { v := FromString("150%"); d.Spec.Strategy.MaxSurge = &v },
			"spec.strategy.maxSurge: must be a percentage 0%-100%"},
		{"unknown failure policy", func(d *Deployment) { d.Spec.Strategy.OnFailure = "Retry" },
			`spec.strategy.onFailure: must be one of Rollback, Pause, got "Retry"`},
		{"bad memory quantity", func(d *Deployment) {
			d.Spec.Template.Spec.Containers[0].Resources.Limits = ResourceList{"memory": "lots"}
		}, `spec.template.spec.containers[0].resources.limits["memory"]: "lots" is not a quantity`},
		{"request above limit", func(d *Deployment) {
			d.Spec.Template.Spec.Containers[0].Resources = ResourceRequirements{
				Requests: ResourceList{"cpu": "2"}, Limits: ResourceList{"cpu": "500m"}}
		}, `spec.template.spec.containers[0].resources.requests["cpu"]: must not exceed the limit 500m, got 2`},
		{"probe names unknown port", func(d *Deployment) {
			d.Spec.Template.Spec.Containers[0].ReadinessProbe = &Probe{HTTPGet: &HTTPGetAction{Port: FromString("metrics")}}
		}, `spec.template.spec.containers[0].readinessProbe.httpGet.port: names port "metrics", but container "web" has no port of that name`},
		{"probe with two actions", func(d *Deployment) {
			d.Spec.Template.Spec.Containers[0].LivenessProbe = &Probe{
				TCPSocket: &TCPSocketAction{Port: FromInt(8080)}, Exec: &ExecAction{Command: []string{"/web", "check"}}}
		}, "spec.template.spec.containers[0].livenessProbe: must set exactly one of httpGet, tcpSocket and exec, got 2"},
		{"restart policy never", func(d *Deployment) { d.Spec.Template.Spec.RestartPolicy = RestartNever },
			"spec.template.spec.restartPolicy: must be Always for a deployment's pods"},
		{"duplicate container", func(d *Deployment) {
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, d.Spec.Template.Spec.Containers[0])
		}, `spec.template.spec.containers[1].name: duplicate container name "web"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDeployment()
			tt.mutate(d)
			Default(d)
			errs := Validate(d)
			if !strings.Contains(errs.Error(), tt.want) {
				t.Fatalf("errors %q\ndo not contain %q", errs.Error(), tt.want)
			}
		})
	}
}

func TestValidDeploymentHasNoErrors(t *testing.T) {
	d := validDeployment()
	Default(d)
	if errs := Validate(d); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
}

func TestValidateService(t *testing.T) {
	tests := []struct {
		name string
		svc  Service
		want string
	}{
		{"node port outside range", Service{Metadata: ObjectMeta{Name: "web"}, Spec: ServiceSpec{Type: ServiceNodePort,
			Ports: []ServicePort{{Port: 80, NodePort: 8080}}}}, "spec.ports[0].nodePort: must be 30000-32767, got 8080"},
		{"node port on cluster IP service", Service{Metadata: ObjectMeta{Name: "web"}, Spec: ServiceSpec{
			Ports: []ServicePort{{Port: 80, NodePort: 30080}}}}, "spec.ports[0].nodePort: may only be set when spec.type is NodePort"},
		{"unnamed ports", Service{Metadata: ObjectMeta{Name: "web"}, Spec: ServiceSpec{
			Ports: []ServicePort{{Port: 80}, {Port: 443}}}}, "spec.ports[0].name: is required when a service has several ports"},
		{"no ports", Service{Metadata: ObjectMeta{Name: "web"}}, "spec.ports: must have at least one port"},
		{"bad type", Service{Metadata: ObjectMeta{Name: "web"}, Spec: ServiceSpec{Type: "LoadBalancer",
			Ports: []ServicePort{{Port: 80}}}}, `spec.type: must be one of ClusterIP, NodePort, got "LoadBalancer"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := tt.svc
			Default(&svc)
			if errs := Validate(&svc); !strings.Contains(errs.Error(), tt.want) {
				t.Fatalf("errors %q\ndo not contain %q", errs.Error(), tt.want)
			}
		})
	}
}

func TestValidateUpdateKeepsPodSpecImmutableExceptBinding(t *testing.T) {
	old := &Pod{Metadata: ObjectMeta{Name: "p", Namespace: "default"},
		Spec: PodSpec{Containers: []Container{{Name: "c", Image: "img:v1"}}}}
	Default(old)
	bound := *old
	bound.Spec.NodeName = "node-1"
	if errs := ValidateUpdate(old, &bound); len(errs) > 0 {
		t.Fatalf("binding refused: %v", errs)
	}
	rebound := bound
	rebound.Spec.NodeName = "node-2"
	if errs := ValidateUpdate(&bound, &rebound); !strings.Contains(errs.Error(), "spec.nodeName: cannot change once the pod is bound") {
		t.Fatalf("rebinding not refused: %v", errs)
	}
	changed := *old
	changed.Spec.Containers = []Container{{Name: "c", Image: "img:v2"}}
	Default(&changed)
	if errs := ValidateUpdate(old, &changed); !strings.Contains(errs.Error(), "a pod's spec cannot change") {
		t.Fatalf("spec change not refused: %v", errs)
	}
}

func TestDefaultIsIdempotentAndCanonical(t *testing.T) {
	d := validDeployment()
	d.Spec.Template.Spec.Containers[0].Resources.Limits = ResourceList{"cpu": "0.5", "memory": "1024Mi"}
	Default(d)
	first, _ := json.Marshal(d)
	Default(d)
	second, _ := json.Marshal(d)
	if string(first) != string(second) {
		t.Fatalf("Default is not idempotent:\n%s\n%s", first, second)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Resources.Limits["cpu"] != "500m" || c.Resources.Limits["memory"] != "1Gi" {
		t.Fatalf("limits not canonical: %v", c.Resources.Limits)
	}
	if c.Resources.Requests["memory"] != "1Gi" {
		t.Fatalf("request not defaulted from limit: %v", c.Resources.Requests)
	}
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.MaxSurge.String() != "25%" || d.Spec.Strategy.OnFailure != FailureRollback {
		t.Fatalf("deployment defaults missing: %+v", d.Spec)
	}
	if d.Metadata.Namespace != DefaultNamespace || d.Kind != "Deployment" {
		t.Fatalf("meta defaults missing: %+v %+v", d.Metadata, d.TypeMeta)
	}
}

func TestQuantityCanonical(t *testing.T) {
	tests := []struct {
		in   Quantity
		res  ResourceName
		want Quantity
	}{
		{"0.5", ResourceCPU, "500m"}, {"1", ResourceCPU, "1"}, {"1500m", ResourceCPU, "1500m"},
		{"2000m", ResourceCPU, "2"}, {"0.0001", ResourceCPU, "1m"},
		{"1024Mi", ResourceMemory, "1Gi"}, {"128Mi", ResourceMemory, "128Mi"}, {"1G", ResourceMemory, "1G"},
		{"1000M", ResourceMemory, "1G"}, {"1536Ki", ResourceMemory, "1536Ki"}, {"1000", ResourceMemory, "1000"},
		{"1073741824", ResourceMemory, "1Gi"}, {"0", ResourceMemory, "0"},
	}
	for _, tt := range tests {
		got, err := tt.in.Canonical(tt.res)
		if err != nil || got != tt.want {
			t.Errorf("Canonical(%q, %s) = %q, %v; want %q", tt.in, tt.res, got, err, tt.want)
		}
	}
	for _, bad := range []Quantity{"", "abc", "-1", "1.5.2", "1e3", "Mi"} {
		if _, err := bad.Canonical(ResourceMemory); err == nil {
			t.Errorf("Canonical(%q) accepted", bad)
		}
	}
}

func TestResolveIntOrPercentRoundsSurgeUpAndUnavailableDown(t *testing.T) {
	tests := []struct {
		v       IntOrString
		total   int32
		roundUp bool
		want    int32
	}{
		{FromString("25%"), 10, true, 3}, {FromString("25%"), 10, false, 2},
		{FromString("25%"), 1, true, 1}, {FromString("25%"), 1, false, 0},
		{FromInt(2), 10, true, 2}, {FromString("100%"), 3, false, 3},
	}
	for _, tt := range tests {
		got, err := ResolveIntOrPercent(tt.v, tt.total, tt.roundUp)
		if err != nil || got != tt.want {
			t.Errorf("ResolveIntOrPercent(%s, %d, %v) = %d, %v; want %d", tt.v, tt.total, tt.roundUp, got, err, tt.want)
		}
	}
}

func TestTemplateHashIsStableAndSensitive(t *testing.T) {
	a, b := validDeployment(), validDeployment()
	Default(a)
	Default(b)
	if TemplateHash(&a.Spec.Template) != TemplateHash(&b.Spec.Template) {
		t.Fatal("equal templates hash differently")
	}
	b.Spec.Template.Spec.Containers[0].Image = "registry:5000/web:v2"
	if TemplateHash(&a.Spec.Template) == TemplateHash(&b.Spec.Template) {
		t.Fatal("different templates hash equally")
	}
}

func TestDecodeKnowsKindsAndRejectsUnknownFields(t *testing.T) {
	obj, err := Decode([]byte(`{"kind":"Service","apiVersion":"v1","metadata":{"name":"web"},"spec":{"ports":[{"port":80,"targetPort":"http"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	svc, ok := obj.(*Service)
	if !ok || svc.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Fatalf("decoded %#v", obj)
	}
	if _, err := Decode([]byte(`{"kind":"Service","metadata":{"name":"web"},"spec":{"prots":[]}}`)); err == nil || !strings.Contains(err.Error(), "prots") {
		t.Fatalf("unknown field accepted: %v", err)
	}
	if _, err := Decode([]byte(`{"kind":"Gadget"}`)); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("unknown kind accepted: %v", err)
	}
}

func TestIntOrStringJSON(t *testing.T) {
	for in, want := range map[string]IntOrString{`8080`: FromInt(8080), `"8080"`: FromInt(8080), `"http"`: FromString("http")} {
		var v IntOrString
		if err := json.Unmarshal([]byte(in), &v); err != nil || v != want {
			t.Errorf("unmarshal %s = %+v, %v", in, v, err)
		}
	}
}

func TestLookupKindAcceptsCLINames(t *testing.T) {
	for _, n := range []string{"pods", "pod", "po", "Pod", "deploy", "svc", "endpoints", "ep"} {
		if _, ok := LookupKind(n); !ok {
			t.Errorf("LookupKind(%q) failed", n)
		}
	}
}
