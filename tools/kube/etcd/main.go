// Command etcd is etcd v3 server's own entry point, built in the same module graph as Kubernetes.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
