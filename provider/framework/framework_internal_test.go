package framework

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/berth-io/berth/control/api"
)

func TestQuantitiesEqualComparesAmountsNotSpelling(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"0.5", "500m", true},
		{"1024Mi", "1Gi", true},
		{"1", "1000m", true},
		{"1G", "1000M", true},
		{"0.0005", "1m", true}, // the control plane rounds CPU up to millicores
		{"1Gi", "1G", false},
		{"500m", "501m", false},
		{"abc", "abc", true},
		{"abc", "0", false},
	} {
		if got := QuantitiesEqual(tc.a, tc.b); got != tc.want {
			t.Errorf("QuantitiesEqual(%q, %q) = %t, want %t", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestFieldPathsMapToTheAttributesUsersWrite(t *testing.T) {
	for _, tc := range []struct {
		field    string
		prefixes []fieldPrefix
		want     string
	}{
		{"spec.template.spec.containers[0].ports[1].containerPort", deploymentFields, "template.containers[0].ports[1].container_port"},
		{"spec.template.metadata.labels", deploymentFields, "template.labels"},
		{"spec.strategy.maxSurge", deploymentFields, "strategy.max_surge"},
		{"spec.strategy.type", deploymentFields, "strategy"},
		{"spec.progressDeadlineSeconds", deploymentFields, "progress_deadline_seconds"},
		{"metadata.name", podFields, "name"},
		{"metadata.generateName", podFields, "name_prefix"},
		{`metadata.labels["app/x"]`, podFields, `labels["app/x"]`},
		{`spec.containers[0].resources.requests["cpu"]`, podFields, `containers[0].resources.requests["cpu"]`},
		{"spec.containers[0].readinessProbe.httpGet.port", podFields, "containers[0].readiness_probe.http_get.port"},
		{"spec.terminationGracePeriodSeconds", podFields, "termination_grace_period_seconds"},
		{"spec.clusterIP", serviceFields, "cluster_ip"},
		{"spec.ports[0].nodePort", serviceFields, "ports[0].node_port"},
	} {
		p, ok := attributePath(tc.field, tc.prefixes)
		if !ok {
			t.Errorf("attributePath(%q) found no attribute, want %s", tc.field, tc.want)
			continue
		}
		if got := attributeString(p); got != tc.want {
			t.Errorf("attributePath(%q) = %s, want %s", tc.field, got, tc.want)
		}
	}
}

func TestPodSpecSurvivesTheRoundTripThroughTheControlPlanesDefaults(t *testing.T) {
	in := podSpecModel{
		RestartPolicy:                 types.StringValue("Always"),
		NodeSelector:                  types.MapValueMust(types.StringType, nil),
		TerminationGracePeriodSeconds: types.Int64Value(30),
		Containers: []containerModel{{
			Name:    types.StringValue("web"),
			Image:   types.StringValue("registry.example/web:1"),
			Command: types.ListNull(types.StringType),
			Args:    listValue([]string{"-v"}, types.ListNull(types.StringType)),
			Env:     []envModel{{Name: types.StringValue("A"), Value: types.StringValue("b")}},
			Ports:   []containerPortModel{{Name: types.StringValue("http"), ContainerPort: types.Int64Value(8080), Protocol: types.StringValue("TCP")}},
			Resources: &resourcesModel{
				Requests: types.MapNull(QuantityType{}),
				Limits:   quantityMapValue(api.ResourceList{"memory": "1024Mi"}, types.MapNull(QuantityType{})),
			},
			ReadinessProbe: &probeModel{
				HTTPGet:             &httpGetModel{Path: types.StringValue("/"), Port: types.StringValue("http"), Scheme: types.StringValue("HTTP")},
				InitialDelaySeconds: types.Int64Value(0), PeriodSeconds: types.Int64Value(10), TimeoutSeconds: types.Int64Value(1),
				SuccessThreshold: types.Int64Value(1), FailureThreshold: types.Int64Value(3),
			},
		}},
	}
	pod := &api.Pod{Metadata: api.ObjectMeta{Name: "web"}, Spec: expandPodSpec(in)}
	api.Default(pod)
	if errs := api.Validate(pod); len(errs) > 0 {
		t.Fatalf("valid spec refused: %v", errs)
	}
	out := flattenPodSpec(pod.Spec, &in)
	c := out.Containers[0]
	if !out.NodeSelector.Equal(in.NodeSelector) {
		t.Errorf("empty node_selector became %v", out.NodeSelector)
	}
	if !c.Command.IsNull() || !c.Args.Equal(in.Containers[0].Args) {
		t.Errorf("command %v args %v, want null and [-v]", c.Command, c.Args)
	}
	// The request the control plane derives from the limit is not shown
	// as a change the user never made.
	if !c.Resources.Requests.IsNull() {
		t.Errorf("requests %v, want null (derived from the limit)", c.Resources.Requests)
	}
	if lim := stringMap(c.Resources.Limits)["memory"]; !QuantitiesEqual(lim, "1Gi") {
		t.Errorf("memory limit %q, want 1Gi", lim)
	}
	if c.ReadinessProbe.HTTPGet.Port.ValueString() != "http" || c.Ports[0].ContainerPort.ValueInt64() != 8080 {
		t.Errorf("probe port %v, container port %v", c.ReadinessProbe.HTTPGet.Port, c.Ports[0].ContainerPort)
	}
}

func TestImportIDsAreNamespaceSlashName(t *testing.T) {
	for _, tc := range []struct {
		id, ns, name string
		ok           bool
	}{
		{"default/web", "default", "web", true},
		{"web", "default", "web", true},
		{"team/web", "team", "web", true},
		{"/web", "", "", false},
		{"a/b/c", "", "", false},
	} {
		ns, name, err := splitID(tc.id)
		if (err == nil) != tc.ok || ns != tc.ns || name != tc.name {
			t.Errorf("splitID(%q) = %q, %q, %v", tc.id, ns, name, err)
		}
	}
}

func TestClientIsNotBuiltWhileTheConfigurationIsUnknown(t *testing.T) {
	m := providerModel{
		Endpoints:         types.ListUnknown(types.StringType),
		CACertificate:     types.StringNull(),
		ClientCertificate: types.StringNull(),
		ClientKey:         types.StringNull(),
		ConfigPath:        types.StringNull(),
	}
	unknown, cfg, err := clientConfig(t.Context(), m)
	if unknown != "endpoints" || cfg != nil || err != nil {
		t.Fatalf("clientConfig = %q, %v, %v; want endpoints unknown", unknown, cfg, err)
	}
	d := &ProviderData{unknown: unknown}
	if _, err := d.Client(t.Context()); err == nil {
		t.Fatal("Client succeeded with an unknown configuration")
	}
}
