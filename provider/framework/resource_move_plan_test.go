package framework_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/berth-io/berth/provider/cluster"
	"github.com/berth-io/berth/provider/framework"
	"github.com/berth-io/berth/provider/ssh"
)

// planServer serves the provider in-process and returns a function that
// plans one resource from its prior state, its engine host records
// (private state) and a new configuration, the way Terraform does, and
// returns the planned state and the diagnostics; and the resources'
// attribute types.
// planFunc plans one resource (see planServer).
type planFunc func(typeName string, prior, config map[string]tftypes.Value, hosts map[string]cluster.HostState) (map[string]tftypes.Value, []*tfprotov6.Diagnostic)

func planServer(t *testing.T) (planFunc, func(typeName string) map[string]tftypes.Type) {
	t.Helper()
	ctx := t.Context()
	srv, err := providerserver.NewProtocol6WithError(framework.New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	schemas, err := srv.GetProviderSchema(ctx, &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pcfg := object(schemas.Provider.ValueType(), nil)
	if _, err := srv.ConfigureProvider(ctx, &tfprotov6.ConfigureProviderRequest{Config: dynamic(t, pcfg)}); err != nil {
		t.Fatal(err)
	}
	attrs := func(typeName string) map[string]tftypes.Type {
		return schemas.ResourceSchemas[typeName].ValueType().(tftypes.Object).AttributeTypes
	}
	return func(typeName string, prior, config map[string]tftypes.Value, hosts map[string]cluster.HostState) (map[string]tftypes.Value, []*tfprotov6.Diagnostic) {
		t.Helper()
		typ := schemas.ResourceSchemas[typeName].ValueType()
		// Terraform proposes the configuration, with prior values where
		// the configuration leaves a (computed) attribute out.
		proposed := map[string]tftypes.Value{}
		for k, v := range prior {
			proposed[k] = v
		}
		for k, v := range config {
			proposed[k] = v
		}
		b, err := json.Marshal(hosts)
		if err != nil {
			t.Fatal(err)
		}
		private, err := json.Marshal(map[string][]byte{"engine_hosts": b})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.PlanResourceChange(ctx, &tfprotov6.PlanResourceChangeRequest{
			TypeName:         typeName,
			PriorState:       dynamic(t, object(typ, prior)),
			ProposedNewState: dynamic(t, object(typ, proposed)),
			Config:           dynamic(t, object(typ, config)),
			PriorPrivate:     private,
		})
		if err != nil {
			t.Fatal(err)
		}
		planned := map[string]tftypes.Value{}
		if resp.PlannedState != nil {
			v, err := resp.PlannedState.Unmarshal(typ)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.As(&planned); err != nil {
				t.Fatal(err)
			}
		}
		return planned, resp.Diagnostics
	}, attrs
}

// object builds a value of an object type from the attributes given, the
// others null.
func object(typ tftypes.Type, vals map[string]tftypes.Value) tftypes.Value {
	ot := typ.(tftypes.Object)
	m := map[string]tftypes.Value{}
	for k, at := range ot.AttributeTypes {
		if v, ok := vals[k]; ok {
			m[k] = v
		} else {
			m[k] = tftypes.NewValue(at, nil)
		}
	}
	return tftypes.NewValue(ot, m)
}

func dynamic(t *testing.T, v tftypes.Value) *tfprotov6.DynamicValue {
	t.Helper()
	dv, err := tfprotov6.NewDynamicValue(v.Type(), v)
	if err != nil {
		t.Fatal(err)
	}
	return &dv
}

func str(s string) tftypes.Value { return tftypes.NewValue(tftypes.String, s) }

func strList(ss ...string) tftypes.Value {
	var vs []tftypes.Value
	for _, s := range ss {
		vs = append(vs, str(s))
	}
	return tftypes.NewValue(tftypes.List{ElementType: tftypes.String}, vs)
}

// hostsValue is a hosts map attribute (control_plane_hosts, hosts) naming
// hosts and their addresses.
func hostsValue(attrs map[string]tftypes.Type, attr string, hosts map[string]string) tftypes.Value {
	mt := attrs[attr].(tftypes.Map)
	m := map[string]tftypes.Value{}
	for name, addr := range hosts {
		m[name] = object(mt.ElementType, map[string]tftypes.Value{"address": str(addr)})
	}
	return tftypes.NewValue(mt, m)
}

func records(role, pool string, hosts map[string]string) map[string]cluster.HostState {
	out := map[string]cluster.HostState{}
	for name, addr := range hosts {
		out[name] = cluster.HostState{SSH: ssh.HostConfig{Address: addr, User: "root", Port: 22}, Role: role, Pool: pool,
			InternalIP: addr, Digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111", ConfigHash: "old"}
	}
	return out
}

// warning returns the detail of the warning whose summary starts with
// prefix, or fails.
func warning(t *testing.T, diags []*tfprotov6.Diagnostic, prefix string) string {
	t.Helper()
	var all []string
	for _, d := range diags {
		if d.Severity == tfprotov6.DiagnosticSeverityError {
			t.Fatalf("plan failed: %s: %s", d.Summary, d.Detail)
		}
		if d.Severity == tfprotov6.DiagnosticSeverityWarning && strings.HasPrefix(d.Summary, prefix) {
			return d.Summary + "\n" + d.Detail
		}
		all = append(all, d.Summary)
	}
	t.Fatalf("no warning %q among %q", prefix, all)
	return ""
}

func TestClusterPlanOfAMoveToAnotherVendorWarnsWithEveryStepAndLeavesTheEndpointsToApply(t *testing.T) {
	plan, attrsOf := planServer(t)
	a := map[string]string{"a-1": "198.18.1.11", "a-2": "198.18.1.12", "a-3": "198.18.1.13"}
	b := map[string]string{"b-1": "198.18.2.11", "b-2": "198.18.2.12", "b-3": "198.18.2.13"}
	attrs := attrsOf("berth_cluster")
	common := map[string]tftypes.Value{
		"image_path":   str("node-image.tar.gz"),
		"image_digest": str("sha256:1111111111111111111111111111111111111111111111111111111111111111"),
	}
	prior := map[string]tftypes.Value{
		"control_plane_hosts": hostsValue(attrs, "control_plane_hosts", a),
		"api_port":            tftypes.NewValue(tftypes.Number, 6443), "etcd_heartbeat_ms": tftypes.NewValue(tftypes.Number, 100),
		"etcd_election_ms": tftypes.NewValue(tftypes.Number, 1000), "cluster_cidr": str("10.244.0.0/16"), "service_cidr": str("10.96.0.0/16"),
		"id": str("c1"), "cluster_id": str("c1"),
		"endpoints":      strList("https://198.18.1.11:6443", "https://198.18.1.12:6443", "https://198.18.1.13:6443"),
		"ca_certificate": str("ca"), "ca_key": str("ca-key"), "client_certificate": str("cert"), "client_key": str("key"),
	}
	config := map[string]tftypes.Value{"control_plane_hosts": hostsValue(attrs, "control_plane_hosts", b)}
	for k, v := range common {
		prior[k], config[k] = v, v
	}
	planned, diags := plan("berth_cluster", prior, config, records(cluster.RoleControlPlane, "", a))
	text := strings.Join(strings.Fields(warning(t, diags, "berth_cluster: ")), " ")
	for _, want := range []string{
		"3 host(s) will join", "3 host(s) will be drained and wiped",
		"add learner b-1, promote; remove member a-1; add learner b-2, promote; remove member a-2; add learner b-3, promote; remove member a-3",
		"from a-1, a-2, a-3 to b-1, b-2, b-3",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the plan's warning does not say %q:\n%s", want, text)
		}
	}
	if planned["endpoints"].IsKnown() {
		t.Errorf("planned endpoints = %v during a move, want unknown: the new hosts serve only after apply, and a provider configured from them must not try them during the plan", planned["endpoints"])
	}

	// Without a move the endpoints stay known, so providers built on them
	// read their objects as usual.
	same := map[string]tftypes.Value{}
	for k, v := range config {
		same[k] = v
	}
	same["control_plane_hosts"] = prior["control_plane_hosts"]
	planned, _ = plan("berth_cluster", prior, same, records(cluster.RoleControlPlane, "", a))
	if !planned["endpoints"].Equal(prior["endpoints"]) {
		t.Errorf("planned endpoints without a move = %v, want the prior %v", planned["endpoints"], prior["endpoints"])
	}
}

func TestNodePoolPlanOfAMoveWarnsThatNewWorkersJoinBeforeOldOnesLeave(t *testing.T) {
	plan, attrsOf := planServer(t)
	a := map[string]string{"a-4": "198.18.1.14", "a-5": "198.18.1.15"}
	b := map[string]string{"b-4": "198.18.2.14", "b-5": "198.18.2.15"}
	attrs := attrsOf("berth_node_pool")
	common := map[string]tftypes.Value{
		"name": str("workers"), "image_path": str("node-image.tar.gz"),
		"image_digest":   str("sha256:1111111111111111111111111111111111111111111111111111111111111111"),
		"endpoints":      strList("https://198.18.2.11:6443"),
		"ca_certificate": str("ca"), "client_certificate": str("cert"), "client_key": str("key"),
	}
	prior := map[string]tftypes.Value{"hosts": hostsValue(attrs, "hosts", a), "id": str("workers")}
	config := map[string]tftypes.Value{"hosts": hostsValue(attrs, "hosts", b)}
	for k, v := range common {
		prior[k], config[k] = v, v
	}
	for name, eps := range map[string]tftypes.Value{
		"endpoints known": config["endpoints"],
		// The control plane moves in the same run (berth_cluster plans
		// its endpoints unknown): the words are the same.
		"endpoints known after apply": tftypes.NewValue(tftypes.List{ElementType: tftypes.String}, tftypes.UnknownValue),
	} {
		t.Run(name, func(t *testing.T) {
			cfg := map[string]tftypes.Value{}
			for k, v := range config {
				cfg[k] = v
			}
			cfg["endpoints"] = eps
			_, diags := plan("berth_node_pool", prior, cfg, records(cluster.RoleWorker, "workers", a))
			text := strings.Join(strings.Fields(warning(t, diags, "berth_node_pool workers: ")), " ")
			join, leave := strings.Index(text, "workers b-4, b-5 join"), strings.Index(text, "workers a-4, a-5 leave one at a time after the new workers are healthy")
			if join < 0 || leave < join {
				t.Errorf("the pool plan's warning does not say new workers join, then old ones leave:\n%s", text)
			}
		})
	}
}
