"""Pulumi type tokens of everything the program registers or invokes, named once."""

# Proxmox
PROXMOX_PROVIDER = "pulumi:providers:proxmoxve"
VM = "proxmoxve:index/vmLegacy:VmLegacy"
ISO = "proxmoxve:download/file:File"
# Talos
SCHEMATIC = "talos:imageFactory/schematic:Schematic"
SECRETS = "talos:machine/secrets:Secrets"
APPLY = "talos:machine/configurationApply:ConfigurationApply"
BOOTSTRAP = "talos:machine/bootstrap:Bootstrap"
KUBECONFIG = "talos:cluster/kubeconfig:Kubeconfig"
HEALTH = "talos:cluster/getHealth:getHealth"
MACHINE_CONFIGURATION = "talos:machine/getConfiguration:getConfiguration"
CLIENT_CONFIGURATION = "talos:client/getConfiguration:getConfiguration"
# GitOps
K8S_PROVIDER = "pulumi:providers:kubernetes"
FLUX = "kubernetes:yaml/v2:ConfigFile"
DEPLOY_KEY = "tls:index/privateKey:PrivateKey"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
GIT_REPOSITORY = "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository"
KUSTOMIZATION = "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization"
# The engine's builtin: the program reads its own stack's last outputs (settings/upgrades.py).
STACK_REFERENCE = "pulumi:pulumi:StackReference"
# pulumi-command
COMMAND = "command:local:Command"
