// Package kubernetes holds the example manifests of cluster mode
// (wharf.yaml: a Secret with the config, a Deployment of three replicas
// with readiness on /readyz, a Service); its test checks that they stay
// consistent with the config the binary accepts.
package kubernetes
