// Command terraform-provider-berth is berth's Terraform provider plugin.
// Terraform starts it; run it with -debug to attach a debugger and print
// the TF_REATTACH_PROVIDERS value to use.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/berth-io/berth/provider/framework"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers such as delve")
	flag.Parse()
	err := providerserver.Serve(context.Background(), framework.New(version), providerserver.ServeOpts{
		Address: framework.ProviderAddress,
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
