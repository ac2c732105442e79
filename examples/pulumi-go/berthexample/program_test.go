package berthexample

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/berth-io/berth/sdk/go/berth"
)

// recordingMocks stands in for the engine: it records every resource the
// program registers and answers like a cluster with two Ready nodes.
type recordingMocks struct {
	mu        sync.Mutex
	resources map[string]resource.PropertyMap // by type token and name
}

func (m *recordingMocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.resources == nil {
		m.resources = map[string]resource.PropertyMap{}
	}
	m.resources[args.TypeToken+"/"+args.Name] = args.Inputs
	state := args.Inputs.Copy()
	switch args.TypeToken {
	case "berth:index:Service":
		state["clusterIp"] = resource.NewStringProperty("10.96.0.20")
		port := args.Inputs["ports"].ArrayValue()[0].ObjectValue().Copy()
		port["nodePort"] = resource.NewNumberProperty(30080)
		state["ports"] = resource.NewArrayProperty([]resource.PropertyValue{resource.NewObjectProperty(port)})
	case "berth:index:Deployment":
		state["liveRevision"] = resource.NewNumberProperty(1)
	case "berth:index:NodeImage":
		state["digest"] = resource.NewStringProperty("sha256:0123")
	case "berth:index:Cluster":
		state["endpoints"] = resource.NewArrayProperty([]resource.PropertyValue{resource.NewStringProperty("https://198.18.0.10:6443")})
		for _, k := range []string{"caCertificate", "clientCertificate", "clientKey"} {
			state[resource.PropertyKey(k)] = resource.MakeSecret(resource.NewStringProperty("PEM " + k))
		}
		state["clusterId"] = resource.NewStringProperty("c-1")
		state["clusterCidr"] = resource.NewStringProperty("10.244.0.0/16")
		state["serviceCidr"] = resource.NewStringProperty("10.96.0.0/16")
	}
	return args.Name + "-id", state, nil
}

func (m *recordingMocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	node := func(name, ip string, ready bool) resource.PropertyValue {
		return resource.NewObjectProperty(resource.PropertyMap{
			"name": resource.NewStringProperty(name), "internalIp": resource.NewStringProperty(ip),
			"ready": resource.NewBoolProperty(ready), "unschedulable": resource.NewBoolProperty(false),
		})
	}
	return resource.PropertyMap{
		"id":    resource.NewStringProperty("nodes"),
		"nodes": resource.NewArrayProperty([]resource.PropertyValue{node("b", "198.18.0.12", true), node("a", "198.18.0.11", false)}),
	}, nil
}

func (m *recordingMocks) get(t *testing.T, key string) resource.PropertyMap {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.resources[key]
	if !ok {
		keys := make([]string, 0, len(m.resources))
		for k := range m.resources {
			keys = append(keys, k)
		}
		t.Fatalf("the program registered no %s (it registered %v)", key, keys)
	}
	return r
}

// runProgram runs Program with the given stack configuration (keys in the
// project's namespace) against the mocks.
func runProgram(t *testing.T, cfg map[string]string) (*recordingMocks, error) {
	t.Helper()
	full := map[string]string{}
	for k, v := range cfg {
		full["berth-example:"+k] = v
	}
	b, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(pulumi.EnvConfig, string(b))
	m := &recordingMocks{}
	err = pulumi.RunErr(Program, pulumi.WithMocks("berth-example", "test", m))
	return m, err
}

func TestProgramRunsTheDeploymentBehindANodePortServiceOnAGivenCluster(t *testing.T) {
	m, err := runProgram(t, map[string]string{"adminConfig": "/tmp/admin.json", "image": "registry.test/web:1", "replicas": "3"})
	if err != nil {
		t.Fatalf("program: %v", err)
	}
	prov := m.get(t, "pulumi:providers:berth/cluster")
	if got := prov["configPath"].StringValue(); got != "/tmp/admin.json" {
		t.Errorf("provider configPath = %q, want /tmp/admin.json", got)
	}
	d := m.get(t, "berth:index:Deployment/web")
	if got := d["replicas"].NumberValue(); got != 3 {
		t.Errorf("replicas = %v, want 3", got)
	}
	c := d["template"].ObjectValue()["containers"].ArrayValue()[0].ObjectValue()
	if got := c["image"].StringValue(); got != "registry.test/web:1" {
		t.Errorf("image = %q, want registry.test/web:1", got)
	}
	s := m.get(t, "berth:index:Service/web")
	if got := s["type"].StringValue(); got != "NodePort" {
		t.Errorf("service type = %q, want NodePort", got)
	}
	if got := s["selector"].ObjectValue()["app"].StringValue(); got != "web" {
		t.Errorf("service selector app = %q, want web (the deployment's pods)", got)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key := range m.resources {
		if strings.HasPrefix(key, "berth:index:Cluster/") || strings.HasPrefix(key, "berth:index:NodePool/") {
			t.Errorf("with adminConfig the program provisioned %s", key)
		}
	}
}

func TestProgramProvisionsAClusterAndAPoolFromTheInventory(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, []byte("PRIVATE KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := Inventory{Name: "tb", Registry: "198.18.0.2:5000"}
	for i, name := range []string{"vendor-a-1", "vendor-a-2", "vendor-b-1"} {
		inv.Hosts = append(inv.Hosts, Host{Name: name, Address: "198.18.0." + string(rune('4'+i)), SSHPort: 22, User: "root", PrivateKeyPath: key, HostPublicKey: "ssh-ed25519 AAAA" + name})
	}
	b, _ := json.Marshal(inv)
	invPath := filepath.Join(dir, "inventory.json")
	if err := os.WriteFile(invPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := runProgram(t, map[string]string{"inventory": invPath, "nodeImage": "/images/node.tar.gz", "image": "registry.test/web:1"})
	if err != nil {
		t.Fatalf("program: %v", err)
	}
	if got := m.get(t, "berth:index:NodeImage/node-image")["path"].StringValue(); got != "/images/node.tar.gz" {
		t.Errorf("node image path = %q", got)
	}
	cluster := m.get(t, "berth:index:Cluster/cluster")
	cp := cluster["controlPlaneHosts"].ObjectValue()
	if len(cp) != 1 || !cp.HasValue("vendor-a-1") {
		t.Fatalf("control-plane hosts = %v, want vendor-a-1 alone", cp.Mappable())
	}
	host := cp["vendor-a-1"].ObjectValue()
	if !host["privateKey"].IsSecret() {
		t.Errorf("the control-plane host's SSH key is not a secret")
	}
	if got := host["hostKey"].StringValue(); got != "ssh-ed25519 AAAAvendor-a-1" {
		t.Errorf("host key = %q, want the inventory's pinned key", got)
	}
	if got := cluster["plainHttpRegistries"].ArrayValue(); len(got) != 1 || got[0].StringValue() != "198.18.0.2:5000" {
		t.Errorf("plain HTTP registries = %v, want the testbed registry", got)
	}
	pool := m.get(t, "berth:index:NodePool/workers")
	hosts := pool["hosts"].ObjectValue()
	if len(hosts) != 2 || !hosts.HasValue("vendor-a-2") || !hosts.HasValue("vendor-b-1") {
		t.Errorf("pool hosts = %v, want vendor-a-2 and vendor-b-1", hosts.Mappable())
	}
	if !pool["clientKey"].IsSecret() {
		t.Errorf("the pool's admin key is not a secret")
	}
	prov := m.get(t, "pulumi:providers:berth/cluster")
	if !prov["clientKey"].IsSecret() || prov.HasValue("configPath") {
		t.Errorf("the workload provider is not configured from the cluster's secret outputs: %v", prov)
	}
	m.get(t, "berth:index:Deployment/web")
	m.get(t, "berth:index:Service/web")
}

func TestLoadSettingsNamesWhatIsMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  map[string]string
		want string
	}{
		{"no image", map[string]string{"adminConfig": "a.json"}, "image is required"},
		{"no cluster", map[string]string{"image": "web:1"}, "set inventory"},
		{"too many control-plane hosts", map[string]string{"image": "web:1", "inventory": writeInventory(t, 1), "controlPlaneHosts": "3"}, "controlPlaneHosts is 3 but inventory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runProgram(t, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("program error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func writeInventory(t *testing.T, hosts int) string {
	t.Helper()
	inv := Inventory{Name: "tb"}
	for range hosts {
		inv.Hosts = append(inv.Hosts, Host{Name: "h", Address: "198.18.0.4", SSHPort: 22})
	}
	b, _ := json.Marshal(inv)
	p := filepath.Join(t.TempDir(), "inventory.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServiceAddressIsTheFirstReadyNodeByName(t *testing.T) {
	nodes := []berth.GetNodesNode{
		{Name: "c", InternalIp: "198.18.0.13", Ready: true},
		{Name: "a", InternalIp: "198.18.0.11", Ready: false},
		{Name: "b", InternalIp: "198.18.0.12", Ready: true, Unschedulable: true},
		{Name: "d", InternalIp: "198.18.0.14", Ready: true},
	}
	got, err := serviceAddress(nodes, 30080)
	if err != nil || got != "198.18.0.13:30080" {
		t.Fatalf("serviceAddress = %q, %v; want 198.18.0.13:30080", got, err)
	}
	if _, err := serviceAddress([]berth.GetNodesNode{{Name: "a", Ready: false}}, 30080); err == nil {
		t.Fatal("serviceAddress without a Ready node succeeded")
	}
}
