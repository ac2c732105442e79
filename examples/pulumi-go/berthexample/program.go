// Package berthexample is a Pulumi program that runs a web deployment
// behind a NodePort service on a berth cluster, written against the
// generated Go SDK (github.com/berth-io/berth/sdk/go/berth).
//
// The cluster comes from one of two places, chosen by stack configuration:
//
//   - inventory set: the program provisions it. It takes a node image
//     bundle (berth:NodeImage), bootstraps a control plane on the first
//     controlPlaneHosts hosts of a testbed inventory file (berth:Cluster),
//     joins the other hosts as a worker pool (berth:NodePool), and talks to
//     the new cluster through an explicit provider configured from the
//     cluster's outputs (endpoints, CA and admin credentials, all secrets).
//   - otherwise adminConfig names an existing cluster's admin client
//     configuration (admin.json, as `berth control --dev` writes it).
//
// Either way it creates a berth:Deployment and a NodePort berth:Service and
// exports the service's address ("<node internal IP>:<node port>").
// Program is exported so that tests run it inline through the Automation
// API; main.go runs it with pulumi.Run.
package berthexample

import (
	"fmt"
	"os"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/berth-io/berth/sdk/go/berth"
)

// Settings are the stack configuration keys the program reads (in the
// project's namespace, e.g. `pulumi config set image ...`).
type Settings struct {
	// Inventory is the path of a testbed inventory file; when set the
	// program provisions the cluster on its hosts.
	Inventory string
	// NodeImage is the path of the node image bundle installed on the
	// hosts (with Inventory). Default bin/node-image.tar.gz.
	NodeImage string
	// ControlPlaneHosts is how many of the inventory's hosts run the
	// control plane (1, 3 or 5); the rest join as workers. Default 1.
	ControlPlaneHosts int
	// AdminConfig is the path of an existing cluster's admin client
	// configuration (without Inventory).
	AdminConfig string
	// Image is the container image of the web deployment. Required.
	Image string
	// Replicas of the deployment. Default 2.
	Replicas int
	// ContainerPort the image listens on. Default 8080.
	ContainerPort int
	// ReadinessPath is the HTTP path the readiness probe GETs on the
	// container port. Default "/".
	ReadinessPath string
	// ProgressDeadlineSeconds after which a rollout that makes no progress
	// fails and is rolled back. Default 120.
	ProgressDeadlineSeconds int
}

// LoadSettings reads Settings from the stack configuration.
func LoadSettings(ctx *pulumi.Context) (Settings, error) {
	c := config.New(ctx, "")
	s := Settings{
		Inventory:               c.Get("inventory"),
		NodeImage:               c.Get("nodeImage"),
		ControlPlaneHosts:       c.GetInt("controlPlaneHosts"),
		AdminConfig:             c.Get("adminConfig"),
		Image:                   c.Get("image"),
		Replicas:                c.GetInt("replicas"),
		ContainerPort:           c.GetInt("containerPort"),
		ReadinessPath:           c.Get("readinessPath"),
		ProgressDeadlineSeconds: c.GetInt("progressDeadlineSeconds"),
	}
	if s.NodeImage == "" {
		s.NodeImage = "bin/node-image.tar.gz"
	}
	if s.ControlPlaneHosts == 0 {
		s.ControlPlaneHosts = 1
	}
	if s.Replicas == 0 {
		s.Replicas = 2
	}
	if s.ContainerPort == 0 {
		s.ContainerPort = 8080
	}
	if s.ReadinessPath == "" {
		s.ReadinessPath = "/"
	}
	if s.ProgressDeadlineSeconds == 0 {
		s.ProgressDeadlineSeconds = 120
	}
	switch {
	case s.Image == "":
		return s, fmt.Errorf("config: image is required (pulumi config set image REF)")
	case s.Inventory == "" && s.AdminConfig == "":
		return s, fmt.Errorf("config: set inventory (provision a cluster on a testbed's hosts) or adminConfig (use an existing cluster)")
	}
	return s, nil
}

// Program is the Pulumi program: the cluster (provisioned or given), then
// the deployment and its NodePort service.
func Program(ctx *pulumi.Context) error {
	s, err := LoadSettings(ctx)
	if err != nil {
		return err
	}
	var (
		prov      *berth.Provider
		dependsOn []pulumi.Resource
	)
	if s.Inventory != "" {
		prov, dependsOn, err = provisionCluster(ctx, s)
	} else {
		prov, err = berth.NewProvider(ctx, "cluster", &berth.ProviderArgs{ConfigPath: pulumi.String(s.AdminConfig)})
	}
	if err != nil {
		return err
	}
	return deployWeb(ctx, s, prov, dependsOn)
}

// provisionCluster installs the node image on the inventory's hosts: a
// control plane on the first ones, a worker pool on the rest.
func provisionCluster(ctx *pulumi.Context, s Settings) (*berth.Provider, []pulumi.Resource, error) {
	inv, err := LoadInventory(s.Inventory)
	if err != nil {
		return nil, nil, err
	}
	if s.ControlPlaneHosts < 0 {
		return nil, nil, fmt.Errorf("config: controlPlaneHosts is %d, must not be negative", s.ControlPlaneHosts)
	}
	if s.ControlPlaneHosts > len(inv.Hosts) {
		return nil, nil, fmt.Errorf("config: controlPlaneHosts is %d but inventory %s lists %d hosts", s.ControlPlaneHosts, s.Inventory, len(inv.Hosts))
	}
	image, err := berth.NewNodeImage(ctx, "node-image", &berth.NodeImageArgs{Path: pulumi.String(s.NodeImage)})
	if err != nil {
		return nil, nil, err
	}
	var registries pulumi.StringArray
	if inv.Registry != "" {
		registries = pulumi.StringArray{pulumi.String(inv.Registry)}
	}
	controlHosts := berth.ClusterControlPlaneHostsMap{}
	for _, h := range inv.Hosts[:s.ControlPlaneHosts] {
		key, err := os.ReadFile(h.PrivateKeyPath)
		if err != nil {
			return nil, nil, fmt.Errorf("read the SSH key of host %s: %w", h.Name, err)
		}
		controlHosts[h.Name] = berth.ClusterControlPlaneHostsArgs{
			Address:    pulumi.String(h.Address),
			Port:       pulumi.Int(h.SSHPort),
			User:       pulumi.String(h.User),
			PrivateKey: pulumi.ToSecret(pulumi.String(string(key))).(pulumi.StringOutput),
			HostKey:    pulumi.String(h.HostPublicKey),
		}
	}
	cluster, err := berth.NewCluster(ctx, "cluster", &berth.ClusterArgs{
		ImagePath:           image.Path,
		ImageDigest:         image.Digest,
		ControlPlaneHosts:   controlHosts,
		PlainHttpRegistries: registries,
	})
	if err != nil {
		return nil, nil, err
	}
	deps := []pulumi.Resource{cluster}
	if workers := inv.Hosts[s.ControlPlaneHosts:]; len(workers) > 0 {
		hosts := berth.NodePoolHostsMap{}
		for _, h := range workers {
			key, err := os.ReadFile(h.PrivateKeyPath)
			if err != nil {
				return nil, nil, fmt.Errorf("read the SSH key of host %s: %w", h.Name, err)
			}
			hosts[h.Name] = berth.NodePoolHostsArgs{
				Address:    pulumi.String(h.Address),
				Port:       pulumi.Int(h.SSHPort),
				User:       pulumi.String(h.User),
				PrivateKey: pulumi.ToSecret(pulumi.String(string(key))).(pulumi.StringOutput),
				HostKey:    pulumi.String(h.HostPublicKey),
			}
		}
		pool, err := berth.NewNodePool(ctx, "workers", &berth.NodePoolArgs{
			Name:                pulumi.String("workers"),
			Hosts:               hosts,
			ImagePath:           image.Path,
			ImageDigest:         image.Digest,
			Endpoints:           cluster.Endpoints,
			CaCertificate:       cluster.CaCertificate,
			ClientCertificate:   cluster.ClientCertificate,
			ClientKey:           cluster.ClientKey,
			ClusterCidr:         cluster.ClusterCidr,
			ServiceCidr:         cluster.ServiceCidr,
			PlainHttpRegistries: registries,
		})
		if err != nil {
			return nil, nil, err
		}
		deps = append(deps, pool)
	}
	prov, err := berth.NewProvider(ctx, "cluster", &berth.ProviderArgs{
		Endpoints:         cluster.Endpoints,
		CaCertificate:     cluster.CaCertificate,
		ClientCertificate: cluster.ClientCertificate,
		ClientKey:         cluster.ClientKey,
	})
	if err != nil {
		return nil, nil, err
	}
	// The admin credentials, for tools such as the berth CLI; the provider
	// marks them secret, so they stay encrypted in the state and masked in
	// output (`pulumi stack output --show-secrets` reveals them).
	ctx.Export("clusterId", cluster.ClusterId)
	ctx.Export("endpoints", cluster.Endpoints)
	ctx.Export("caCertificate", cluster.CaCertificate)
	ctx.Export("clientCertificate", cluster.ClientCertificate)
	ctx.Export("clientKey", cluster.ClientKey)
	return prov, deps, nil
}

// deployWeb creates the web deployment and its NodePort service through
// prov and exports where the service answers.
func deployWeb(ctx *pulumi.Context, s Settings, prov *berth.Provider, dependsOn []pulumi.Resource) error {
	opts := []pulumi.ResourceOption{pulumi.Provider(prov), pulumi.DependsOn(dependsOn)}
	labels := pulumi.StringMap{"app": pulumi.String("web")}
	web, err := berth.NewDeployment(ctx, "web", &berth.DeploymentArgs{
		Name:                    pulumi.String("web"),
		Replicas:                pulumi.Int(s.Replicas),
		Selector:                labels,
		ProgressDeadlineSeconds: pulumi.Int(s.ProgressDeadlineSeconds),
		Strategy: berth.DeploymentStrategyArgs{
			MaxSurge:       pulumi.String("1"),
			MaxUnavailable: pulumi.String("0"),
			OnFailure:      pulumi.String("Rollback"),
		},
		Template: berth.DeploymentTemplateArgs{
			Labels: labels,
			Containers: berth.DeploymentTemplateContainerArray{
				berth.DeploymentTemplateContainerArgs{
					Name:  pulumi.String("web"),
					Image: pulumi.String(s.Image),
					Ports: berth.DeploymentTemplateContainerPortArray{
						berth.DeploymentTemplateContainerPortArgs{Name: pulumi.String("http"), ContainerPort: pulumi.Int(s.ContainerPort)},
					},
					ReadinessProbe: berth.DeploymentTemplateContainerReadinessProbeArgs{
						HttpGet:       berth.DeploymentTemplateContainerReadinessProbeHttpGetArgs{Path: pulumi.String(s.ReadinessPath), Port: pulumi.String("http")},
						PeriodSeconds: pulumi.Int(1),
					},
				},
			},
		},
	}, opts...)
	if err != nil {
		return err
	}
	svc, err := berth.NewService(ctx, "web", &berth.ServiceArgs{
		Name:     pulumi.String("web"),
		Type:     pulumi.String("NodePort"),
		Selector: labels,
		Ports: berth.ServicePortArray{
			berth.ServicePortArgs{Name: pulumi.String("http"), Port: pulumi.Int(80), TargetPort: pulumi.String("http")},
		},
	}, opts...)
	if err != nil {
		return err
	}
	nodePort := svc.Ports.Index(pulumi.Int(0)).NodePort().Elem()
	nodes := berth.GetNodesOutput(ctx, berth.GetNodesOutputArgs{}, pulumi.Provider(prov), pulumi.DependsOn(append(dependsOn, svc)))
	ctx.Export("deployment", web.Name)
	ctx.Export("liveRevision", web.LiveRevision)
	ctx.Export("clusterIp", svc.ClusterIp)
	ctx.Export("nodePort", nodePort)
	ctx.Export("address", pulumi.All(nodes.Nodes(), nodePort).ApplyT(func(v []any) (string, error) {
		return serviceAddress(v[0].([]berth.GetNodesNode), v[1].(int))
	}).(pulumi.StringOutput))
	return nil
}

// serviceAddress is "<internal IP>:<node port>" of the first Ready,
// schedulable node by name: any node forwards a node port to the service.
func serviceAddress(nodes []berth.GetNodesNode, nodePort int) (string, error) {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for _, n := range nodes {
		if n.Ready && !n.Unschedulable && n.InternalIp != "" {
			return fmt.Sprintf("%s:%d", n.InternalIp, nodePort), nil
		}
	}
	return "", fmt.Errorf("no Ready node to reach node port %d on (%d nodes)", nodePort, len(nodes))
}
