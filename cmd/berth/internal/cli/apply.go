package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// ReadObjects decodes a file of objects: YAML documents separated by ---,
// or JSON (one object, or a {"items": [...]} list). Every object must name
// its kind.
func ReadObjects(data []byte) ([]api.Object, error) {
	var out []api.Object
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(trimmed, &list); err == nil && list.Items != nil {
			for i, raw := range list.Items {
				obj, err := api.Decode(raw)
				if err != nil {
					return nil, fmt.Errorf("item %d: %w", i, err)
				}
				out = append(out, obj)
			}
			return out, nil
		}
		obj, err := api.Decode(trimmed)
		if err != nil {
			return nil, err
		}
		return []api.Object{obj}, nil
	}
	for i, doc := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		obj, err := api.Decode(js)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no objects found")
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func readInput(g *globals, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(g.stdin)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

func newApplyCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create objects from a file, or update them when they exist",
		Example: `  berth apply -f web.yaml
  cat web.json | berth apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f is required: the YAML or JSON file of objects to apply (- for standard input)")
			}
			data, err := readInput(g, file)
			if err != nil {
				return err
			}
			objs, err := ReadObjects(data)
			if err != nil {
				return fmt.Errorf("read %s: %w", file, err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, obj := range objs {
				ki := api.KindOf(obj)
				if ki.Namespaced && obj.GetMeta().Namespace == "" {
					obj.GetMeta().Namespace = g.namespace
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
				result, err := applyOne(ctx, c, obj)
				cancel()
				if err != nil {
					return fmt.Errorf("apply %s %q: %w", strings.ToLower(ki.Kind), obj.GetMeta().Name, err)
				}
				fmt.Fprintf(g.stdout, "%s/%s %s\n", strings.ToLower(ki.Kind), obj.GetMeta().Name, result)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file of objects (YAML or JSON; - for standard input)")
	return cmd
}

// applyOne creates obj, or updates the stored object with obj's spec and
// labels when it exists; it says which ("created", "configured",
// "unchanged").
func applyOne(ctx context.Context, c *client.Client, obj api.Object) (string, error) {
	ki := api.KindOf(obj)
	m := obj.GetMeta()
	current := ki.New()
	err := c.Get(ctx, m.Namespace, m.Name, current)
	if api.IsNotFound(err) {
		if err := c.Create(ctx, obj); err != nil {
			return "", err
		}
		return "created", nil
	}
	if err != nil {
		return "", err
	}
	cm := current.GetMeta()
	m.ResourceVersion = cm.ResourceVersion
	keepAllocated(current, obj)
	api.Default(obj)
	if specEqual(current, obj) && reflect.DeepEqual(cm.Labels, m.Labels) && reflect.DeepEqual(cm.Annotations, m.Annotations) {
		return "unchanged", nil
	}
	if err := c.Update(ctx, obj); err != nil {
		return "", err
	}
	return "configured", nil
}

// keepAllocated copies what the server allocated (a service's cluster IP
// and node ports) into an update that leaves them out, as the server itself
// would, so re-applying the same file reports "unchanged".
func keepAllocated(current, obj api.Object) {
	cur, ok1 := current.(*api.Service)
	svc, ok2 := obj.(*api.Service)
	if !ok1 || !ok2 {
		return
	}
	if svc.Spec.ClusterIP == "" {
		svc.Spec.ClusterIP = cur.Spec.ClusterIP
	}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.NodePort != 0 || svc.Spec.Type != api.ServiceNodePort {
			continue
		}
		for _, cp := range cur.Spec.Ports {
			if cp.Port == p.Port && (cp.Protocol == p.Protocol || p.Protocol == "") {
				p.NodePort = cp.NodePort
			}
		}
	}
}

// specEqual compares everything but metadata and status.
func specEqual(a, b api.Object) bool {
	strip := func(o api.Object) map[string]any {
		raw, _ := json.Marshal(o)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		delete(m, "metadata")
		delete(m, "status")
		return m
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

func newDeleteCmd(g *globals) *cobra.Command {
	var file string
	var grace int64
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILE)",
		Short: "Delete objects",
		RunE: func(cmd *cobra.Command, args []string) error {
			var objs []api.Object
			if file != "" {
				data, err := readInput(g, file)
				if err != nil {
					return err
				}
				if objs, err = ReadObjects(data); err != nil {
					return fmt.Errorf("read %s: %w", file, err)
				}
			} else {
				if len(args) == 0 {
					return fmt.Errorf("name what to delete: berth delete KIND NAME, or -f FILE")
				}
				ki, names, err := kindAndNames(args)
				if err != nil {
					return err
				}
				if len(names) == 0 {
					return fmt.Errorf("delete needs a name: berth delete %s NAME", strings.ToLower(ki.Kind))
				}
				for _, n := range names {
					o := ki.New()
					o.GetMeta().Name = n
					objs = append(objs, o)
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, obj := range objs {
				ki := api.KindOf(obj)
				if ki.Namespaced && obj.GetMeta().Namespace == "" {
					obj.GetMeta().Namespace = g.namespace
				}
				var opts []client.DeleteOption
				if grace >= 0 {
					opts = append(opts, client.GracePeriod(grace))
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
				err := c.Delete(ctx, obj, opts...)
				cancel()
				if err != nil {
					return fmt.Errorf("delete %s %q: %w", strings.ToLower(ki.Kind), obj.GetMeta().Name, err)
				}
				fmt.Fprintf(g.stdout, "%s/%s deleted\n", strings.ToLower(ki.Kind), obj.GetMeta().Name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "delete the objects in this file")
	cmd.Flags().Int64Var(&grace, "grace-period", -1, "seconds a pod gets to stop (default: its own setting; 0 removes at once)")
	return cmd
}
