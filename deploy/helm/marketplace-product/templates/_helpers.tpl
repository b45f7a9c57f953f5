{{/*
Helpers of the marketplace-product chart. Rename the "marketplace-product." prefix with the chart.

AWS Marketplace's EKS add-on rules (seller guide, container-product-policies) allow only
.Release.Name and .Release.Namespace of the release object, no `lookup` and no hooks; these
helpers use nothing else. tests/test_helm.py enforces it.
*/}}

{{/* The chart's name, as a label value. */}}
{{- define "marketplace-product.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: the release's, with the chart's name unless the release already holds it. */}}
{{- define "marketplace-product.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
The namespace every object goes to: the release's, refused when it is one AWS Marketplace does
not support for paid products and add-ons (default, kube-system, kube-public). Rendering stops
with the reason, so `helm install` without `--namespace` creates nothing.
*/}}
{{- define "marketplace-product.namespace" -}}
{{- if has .Release.Namespace (list "default" "kube-system" "kube-public") -}}
{{- fail (printf "namespace %q is not supported for AWS Marketplace products: install into the product's own namespace (helm install --namespace <name> --create-namespace)" .Release.Namespace) -}}
{{- end -}}
{{- .Release.Namespace -}}
{{- end -}}

{{/* Labels that select the product's pods. */}}
{{- define "marketplace-product.selectorLabels" -}}
app.kubernetes.io/name: {{ include "marketplace-product.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object (the selector labels, the versions, the buyer's additionalLabels). */}}
{{- define "marketplace-product.labels" -}}
{{ include "marketplace-product.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: Helm
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.additionalLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The ServiceAccount the pods run as. Created with the release by default; otherwise it must be
named, since the namespace's "default" account has no IAM role and the entrypoint would stop
with "no AWS credentials found".
*/}}
{{- define "marketplace-product.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "marketplace-product.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false: the ServiceAccount whose IAM role (IRSA) allows aws-marketplace:RegisterUsage" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
