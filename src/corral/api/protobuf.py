"""Decode request bodies sent as Kubernetes protobuf into the equivalent JSON object.

kubectl 1.32's typed commands (``create configmap|secret|namespace|deployment|job|cronjob|
serviceaccount|service|priorityclass|quota|poddisruptionbudget|role|rolebinding|ingress...``,
``create token``, ``drain``'s evictions) send ``Content-Type: application/vnd.kubernetes.protobuf``.
The API server's request-body reader calls :func:`decode_k8s_protobuf` for that media type and
then handles the dict exactly as if the client had sent JSON.

Wire format: the 4-byte magic ``k8s\\x00`` and a ``runtime.Unknown`` envelope (1 typeMeta
{1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType); ``raw`` is the object's own
protobuf message with the field numbers of k8s.io/api's ``generated.proto``.

Protobuf is not self-describing, so the module carries a field table per message (``_SCHEMA``),
written as ``"<number> <jsonName> <type>"`` entries: ``s`` string, ``i`` int32/int64, ``b`` bool,
``y`` bytes (base64 in JSON), or a message name; ``*T`` repeated, ``{T}`` map<string, T>, ``^T``
a Go struct embedded inline (its fields are merged into the parent object). Numbers and types
are those of k8s.io/api v1.32 (read from the file descriptors registered in kubectl 1.32); names
are the JSON names, which equal the proto names except ``BoundObjectReference.uid`` (``uID``).

Presence follows what Go's JSON encoder would have produced from the same Go object, because
kubectl's ``--dry-run=client -o json`` of the same command is the reference: the Go marshaller
writes every non-pointer scalar even when it is zero, while JSON drops zero ``omitempty`` values.
A trailing ``!`` marks the scalars whose zero value does appear in JSON (pointer fields such as
``replicas`` and fields without ``omitempty`` such as ``containerPort``); other zero scalars are
omitted. Message fields are kept whenever they are on the wire (``"resources": {}``), a zero
``metav1.Time`` becomes ``null``. The ``!`` marks were found by feeding kubectl 1.32 responses in
which every field was set to its zero value and reading its JSON output. Unknown field numbers
are skipped, as protobuf requires.

Pure functions, no I/O. Raises ``StatusError`` 400 for malformed input and 415 for a kind that
has no table.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from corral.api.errors import bad_request, unsupported_media_type

PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# Wire types.
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5

# (apiVersion, kind) -> top-level message.
_KINDS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("policy/v1", "Eviction"): "Eviction",
    ("v1", "DeleteOptions"): "DeleteOptions",  # kubectl drain --disable-eviction's DELETE body
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    # kubectl auth can-i / can-i --list / whoami
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("coordination.k8s.io/v1", "Lease"): "Lease",
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "HorizontalPodAutoscaler",  # kubectl autoscale
    # kubectl certificate approve|deny (PUT .../approval)
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): "CertificateSigningRequest",
}

SUPPORTED_KINDS: frozenset[tuple[str, str]] = frozenset(_KINDS)

# Field tables (facts from k8s.io/api and k8s.io/apimachinery v1.32 generated.proto).
_SCHEMA: dict[str, str] = {
    "Lease": "1 metadata ObjectMeta; 2 spec LeaseSpec",
    "LeaseSpec": (
        "1 holderIdentity s!; 2 leaseDurationSeconds i!; 3 acquireTime MicroTime; "
        "4 renewTime MicroTime; 5 leaseTransitions i!; 6 strategy s!; 7 preferredHolder s!"
    ),
    "ObjectMeta": (
        "1 name s; 2 generateName s; 3 namespace s; 4 selfLink s; 5 uid s; 6 resourceVersion s; "
        "7 generation i; 8 creationTimestamp Time; 9 deletionTimestamp Time; "
        "10 deletionGracePeriodSeconds i!; 11 labels {s}; 12 annotations {s}; "
        "13 ownerReferences *OwnerReference; 14 finalizers *s; "
        "17 managedFields *ManagedFieldsEntry"
    ),
    "ManagedFieldsEntry": (
        "1 manager s; 2 operation s; 3 apiVersion s; 4 time Time; 6 fieldsType s; "
        "7 fieldsV1 FieldsV1; 8 subresource s"
    ),
    "OwnerReference": (
        "1 kind s!; 3 name s!; 4 uid s!; 5 apiVersion s!; 6 controller b!; 7 blockOwnerDeletion b!"
    ),
    "Eviction": "1 metadata ObjectMeta; 2 deleteOptions DeleteOptions",
    "DeleteOptions": (
        "1 gracePeriodSeconds i!; 2 preconditions Preconditions; 3 orphanDependents b!; "
        "4 propagationPolicy s!; 5 dryRun *s; "
        "6 ignoreStoreReadErrorWithClusterBreakingPotential b!"
    ),
    "Preconditions": "1 uid s!; 2 resourceVersion s!",
    "Ingress": "1 metadata ObjectMeta; 2 spec IngressSpec; 3 status IngressStatus",
    "IngressStatus": "1 loadBalancer IngressLoadBalancerStatus",
    "IngressLoadBalancerStatus": "1 ingress *IngressLoadBalancerIngress",
    "IngressLoadBalancerIngress": "1 ip s; 2 hostname s; 4 ports *IngressPortStatus",
    "IngressPortStatus": "1 port i!; 2 protocol s!; 3 error s!",
    "IngressSpec": (
        "1 defaultBackend IngressBackend; 2 tls *IngressTLS; 3 rules *IngressRule; "
        "4 ingressClassName s!"
    ),
    "IngressRule": "1 host s; 2 ingressRuleValue ^IngressRuleValue",
    "IngressRuleValue": "1 http HTTPIngressRuleValue",
    "HTTPIngressRuleValue": "1 paths *HTTPIngressPath",
    "HTTPIngressPath": "1 path s; 2 backend IngressBackend; 3 pathType s!",
    "IngressBackend": "3 resource TypedLocalObjectReference; 4 service IngressServiceBackend",
    "TypedLocalObjectReference": "1 apiGroup s!; 2 kind s!; 3 name s!",
    "IngressServiceBackend": "1 name s!; 2 port ServiceBackendPort",
    "ServiceBackendPort": "1 name s; 2 number i",
    "IngressTLS": "1 hosts *s; 2 secretName s",
    "ClusterRoleBinding": "1 metadata ObjectMeta; 2 subjects *Subject; 3 roleRef RoleRef",
    "RoleRef": "1 apiGroup s!; 2 kind s!; 3 name s!",
    "Subject": "1 kind s!; 2 apiGroup s; 3 name s!; 4 namespace s",
    "RoleBinding": "1 metadata ObjectMeta; 2 subjects *Subject; 3 roleRef RoleRef",
    "ClusterRole": "1 metadata ObjectMeta; 2 rules *PolicyRule; 3 aggregationRule AggregationRule",
    "AggregationRule": "1 clusterRoleSelectors *LabelSelector",
    "LabelSelector": "1 matchLabels {s}; 2 matchExpressions *LabelSelectorRequirement",
    "LabelSelectorRequirement": "1 key s!; 2 operator s!; 3 values *s",
    "PolicyRule": (
        "1 verbs *s; 2 apiGroups *s; 3 resources *s; 4 resourceNames *s; 5 nonResourceURLs *s"
    ),
    "Role": "1 metadata ObjectMeta; 2 rules *PolicyRule",
    "CertificateSigningRequest": (
        "1 metadata ObjectMeta; 2 spec CertificateSigningRequestSpec; "
        "3 status CertificateSigningRequestStatus"
    ),
    "CertificateSigningRequestSpec": (  # 6 extra (map of ExtraValue) is not decoded
        "1 request y!; 7 signerName s!; 8 expirationSeconds i!; 5 usages *s; 2 username s; "
        "3 uid s; 4 groups *s"
    ),
    "CertificateSigningRequestStatus": (
        "1 conditions *CertificateSigningRequestCondition; 2 certificate y"
    ),
    "CertificateSigningRequestCondition": (
        "1 type s!; 6 status s!; 2 reason s; 3 message s; 4 lastUpdateTime Time; "
        "5 lastTransitionTime Time"
    ),
    "TokenRequest": "1 metadata ObjectMeta; 2 spec TokenRequestSpec; 3 status TokenRequestStatus",
    "TokenRequestStatus": "1 token s!; 2 expirationTimestamp Time",
    "SelfSubjectAccessReview": "1 metadata ObjectMeta; 2 spec SelfSubjectAccessReviewSpec",
    "SelfSubjectAccessReviewSpec": (
        "1 resourceAttributes ResourceAttributes; 2 nonResourceAttributes NonResourceAttributes"
    ),
    "SubjectAccessReview": "1 metadata ObjectMeta; 2 spec SubjectAccessReviewSpec",
    "SubjectAccessReviewSpec": (
        "1 resourceAttributes ResourceAttributes; 2 nonResourceAttributes NonResourceAttributes; "
        "3 user s; 4 groups *s; 6 uid s"
    ),
    "ResourceAttributes": (
        "1 namespace s; 2 verb s; 3 group s; 4 version s; 5 resource s; 6 subresource s; 7 name s"
    ),
    "NonResourceAttributes": "1 path s; 2 verb s",
    "SelfSubjectRulesReview": "1 metadata ObjectMeta; 2 spec SelfSubjectRulesReviewSpec",
    "SelfSubjectRulesReviewSpec": "1 namespace s",
    "SelfSubjectReview": "1 metadata ObjectMeta",
    "TokenRequestSpec": (
        "1 audiences *s; 3 boundObjectRef BoundObjectReference; 4 expirationSeconds i!"
    ),
    "BoundObjectReference": "1 kind s; 2 apiVersion s; 3 name s; 4 uid s",
    "PodDisruptionBudget": (
        "1 metadata ObjectMeta; 2 spec PodDisruptionBudgetSpec; 3 status PodDisruptionBudgetStatus"
    ),
    "PodDisruptionBudgetStatus": (
        "1 observedGeneration i; 2 disruptedPods {Time}; 3 disruptionsAllowed i!; "
        "4 currentHealthy i!; 5 desiredHealthy i!; 6 expectedPods i!; 7 conditions *Condition"
    ),
    "Condition": (
        "1 type s!; 2 status s!; 3 observedGeneration i; 4 lastTransitionTime Time; 5 reason s!; "
        "6 message s!"
    ),
    "PodDisruptionBudgetSpec": (
        "1 minAvailable IntOrString; 2 selector LabelSelector; 3 maxUnavailable IntOrString; "
        "4 unhealthyPodEvictionPolicy s!"
    ),
    "ResourceQuota": (
        "1 metadata ObjectMeta; 2 spec ResourceQuotaSpec; 3 status ResourceQuotaStatus"
    ),
    "ResourceQuotaStatus": "1 hard {Quantity}; 2 used {Quantity}",
    "ResourceQuotaSpec": "1 hard {Quantity}; 2 scopes *s; 3 scopeSelector ScopeSelector",
    "ScopeSelector": "1 matchExpressions *ScopedResourceSelectorRequirement",
    "ScopedResourceSelectorRequirement": "1 scopeName s!; 2 operator s!; 3 values *s",
    "HorizontalPodAutoscaler": (
        "1 metadata ObjectMeta; 2 spec HorizontalPodAutoscalerSpec; "
        "3 status HorizontalPodAutoscalerStatus"
    ),
    "HorizontalPodAutoscalerSpec": (
        "1 scaleTargetRef CrossVersionObjectReference; 2 minReplicas i!; 3 maxReplicas i!; "
        "4 targetCPUUtilizationPercentage i!"
    ),
    "CrossVersionObjectReference": "1 kind s!; 2 name s!; 3 apiVersion s",
    "HorizontalPodAutoscalerStatus": (
        "1 observedGeneration i!; 2 lastScaleTime Time; 3 currentReplicas i!; "
        "4 desiredReplicas i!; 5 currentCPUUtilizationPercentage i!"
    ),
    "PriorityClass": (
        "1 metadata ObjectMeta; 2 value i!; 3 globalDefault b; 4 description s; "
        "5 preemptionPolicy s!"
    ),
    "CronJob": "1 metadata ObjectMeta; 2 spec CronJobSpec; 3 status CronJobStatus",
    "CronJobStatus": (
        "1 active *ObjectReference; 4 lastScheduleTime Time; 5 lastSuccessfulTime Time"
    ),
    "ObjectReference": (
        "1 kind s; 2 namespace s; 3 name s; 4 uid s; 5 apiVersion s; 6 resourceVersion s; "
        "7 fieldPath s"
    ),
    "CronJobSpec": (
        "1 schedule s!; 2 startingDeadlineSeconds i!; 3 concurrencyPolicy s; 4 suspend b!; "
        "5 jobTemplate JobTemplateSpec; 6 successfulJobsHistoryLimit i!; "
        "7 failedJobsHistoryLimit i!; 8 timeZone s!"
    ),
    "JobTemplateSpec": "1 metadata ObjectMeta; 2 spec JobSpec",
    "JobSpec": (
        "1 parallelism i!; 2 completions i!; 3 activeDeadlineSeconds i!; "
        "4 selector LabelSelector; 5 manualSelector b!; 6 template PodTemplateSpec; "
        "7 backoffLimit i!; 8 ttlSecondsAfterFinished i!; 9 completionMode s!; 10 suspend b!; "
        "11 podFailurePolicy PodFailurePolicy; 12 backoffLimitPerIndex i!; "
        "13 maxFailedIndexes i!; 14 podReplacementPolicy s!; 15 managedBy s!; "
        "16 successPolicy SuccessPolicy"
    ),
    "PodTemplateSpec": "1 metadata ObjectMeta; 2 spec PodSpec",
    "PodSpec": (
        "1 volumes *Volume; 2 containers *Container; 3 restartPolicy s; "
        "4 terminationGracePeriodSeconds i!; 5 activeDeadlineSeconds i!; 6 dnsPolicy s; "
        "7 nodeSelector {s}; 8 serviceAccountName s; 9 serviceAccount s; 10 nodeName s; "
        "11 hostNetwork b; 12 hostPID b; 13 hostIPC b; 14 securityContext PodSecurityContext; "
        "15 imagePullSecrets *LocalObjectReference; 16 hostname s; 17 subdomain s; "
        "18 affinity Affinity; 19 schedulerName s; 20 initContainers *Container; "
        "21 automountServiceAccountToken b!; 22 tolerations *Toleration; "
        "23 hostAliases *HostAlias; 24 priorityClassName s; 25 priority i!; "
        "26 dnsConfig PodDNSConfig; 27 shareProcessNamespace b!; "
        "28 readinessGates *PodReadinessGate; 29 runtimeClassName s!; 30 enableServiceLinks b!; "
        "31 preemptionPolicy s!; 32 overhead {Quantity}; "
        "33 topologySpreadConstraints *TopologySpreadConstraint; "
        "34 ephemeralContainers *EphemeralContainer; 35 setHostnameAsFQDN b!; 36 os PodOS; "
        "37 hostUsers b!; 38 schedulingGates *PodSchedulingGate; "
        "39 resourceClaims *PodResourceClaim; 40 resources ResourceRequirements"
    ),
    "ResourceRequirements": "1 limits {Quantity}; 2 requests {Quantity}; 3 claims *ResourceClaim",
    "ResourceClaim": "1 name s!; 2 request s",
    "PodResourceClaim": "1 name s!; 3 resourceClaimName s!; 4 resourceClaimTemplateName s!",
    "PodSchedulingGate": "1 name s!",
    "PodOS": "1 name s!",
    "TopologySpreadConstraint": (
        "1 maxSkew i!; 2 topologyKey s!; 3 whenUnsatisfiable s!; 4 labelSelector LabelSelector; "
        "5 minDomains i!; 6 nodeAffinityPolicy s!; 7 nodeTaintsPolicy s!; 8 matchLabelKeys *s"
    ),
    "PodReadinessGate": "1 conditionType s!",
    "PodDNSConfig": "1 nameservers *s; 2 searches *s; 3 options *PodDNSConfigOption",
    "PodDNSConfigOption": "1 name s; 2 value s!",
    "HostAlias": "1 ip s!; 2 hostnames *s",
    "Toleration": "1 key s; 2 operator s; 3 value s; 4 effect s; 5 tolerationSeconds i!",
    "Affinity": (
        "1 nodeAffinity NodeAffinity; 2 podAffinity PodAffinity; 3 podAntiAffinity PodAntiAffinity"
    ),
    "PodAntiAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution *PodAffinityTerm; "
        "2 preferredDuringSchedulingIgnoredDuringExecution *WeightedPodAffinityTerm"
    ),
    "WeightedPodAffinityTerm": "1 weight i!; 2 podAffinityTerm PodAffinityTerm",
    "PodAffinityTerm": (
        "1 labelSelector LabelSelector; 2 namespaces *s; 3 topologyKey s!; "
        "4 namespaceSelector LabelSelector; 5 matchLabelKeys *s; 6 mismatchLabelKeys *s"
    ),
    "PodAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution *PodAffinityTerm; "
        "2 preferredDuringSchedulingIgnoredDuringExecution *WeightedPodAffinityTerm"
    ),
    "NodeAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector; "
        "2 preferredDuringSchedulingIgnoredDuringExecution *PreferredSchedulingTerm"
    ),
    "PreferredSchedulingTerm": "1 weight i!; 2 preference NodeSelectorTerm",
    "NodeSelectorTerm": (
        "1 matchExpressions *NodeSelectorRequirement; 2 matchFields *NodeSelectorRequirement"
    ),
    "NodeSelectorRequirement": "1 key s!; 2 operator s!; 3 values *s",
    "NodeSelector": "1 nodeSelectorTerms *NodeSelectorTerm",
    "LocalObjectReference": "1 name s",
    "PodSecurityContext": (
        "1 seLinuxOptions SELinuxOptions; 2 runAsUser i!; 3 runAsNonRoot b!; "
        "4 supplementalGroups *i; 5 fsGroup i!; 6 runAsGroup i!; 7 sysctls *Sysctl; "
        "8 windowsOptions WindowsSecurityContextOptions; 9 fsGroupChangePolicy s!; "
        "10 seccompProfile SeccompProfile; 11 appArmorProfile AppArmorProfile; "
        "12 supplementalGroupsPolicy s!; 13 seLinuxChangePolicy s!"
    ),
    "AppArmorProfile": "1 type s!; 2 localhostProfile s!",
    "SeccompProfile": "1 type s!; 2 localhostProfile s!",
    "Sysctl": "1 name s!; 2 value s!",
    "WindowsSecurityContextOptions": (
        "1 gmsaCredentialSpecName s!; 2 gmsaCredentialSpec s!; 3 runAsUserName s!; 4 hostProcess b!"
    ),
    "SELinuxOptions": "1 user s; 2 role s; 3 type s; 4 level s",
    "EphemeralContainer": (
        "1 ephemeralContainerCommon ^EphemeralContainerCommon; 2 targetContainerName s"
    ),
    "EphemeralContainerCommon": (
        "1 name s!; 2 image s; 3 command *s; 4 args *s; 5 workingDir s; 6 ports *ContainerPort; "
        "7 env *EnvVar; 8 resources ResourceRequirements; 9 volumeMounts *VolumeMount; "
        "10 livenessProbe Probe; 11 readinessProbe Probe; 12 lifecycle Lifecycle; "
        "13 terminationMessagePath s; 14 imagePullPolicy s; 15 securityContext SecurityContext; "
        "16 stdin b; 17 stdinOnce b; 18 tty b; 19 envFrom *EnvFromSource; "
        "20 terminationMessagePolicy s; 21 volumeDevices *VolumeDevice; 22 startupProbe Probe; "
        "23 resizePolicy *ContainerResizePolicy; 24 restartPolicy s!"
    ),
    "SecurityContext": (
        "1 capabilities Capabilities; 2 privileged b!; 3 seLinuxOptions SELinuxOptions; "
        "4 runAsUser i!; 5 runAsNonRoot b!; 6 readOnlyRootFilesystem b!; "
        "7 allowPrivilegeEscalation b!; 8 runAsGroup i!; 9 procMount s!; "
        "10 windowsOptions WindowsSecurityContextOptions; 11 seccompProfile SeccompProfile; "
        "12 appArmorProfile AppArmorProfile"
    ),
    "Capabilities": "1 add *s; 2 drop *s",
    "Lifecycle": "1 postStart LifecycleHandler; 2 preStop LifecycleHandler",
    "LifecycleHandler": (
        "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; "
        "4 sleep SleepAction"
    ),
    "SleepAction": "1 seconds i!",
    "TCPSocketAction": "1 port IntOrString; 2 host s",
    "HTTPGetAction": (
        "1 path s; 2 port IntOrString; 3 host s; 4 scheme s; 5 httpHeaders *HTTPHeader"
    ),
    "HTTPHeader": "1 name s!; 2 value s!",
    "ExecAction": "1 command *s",
    "Probe": (
        "1 handler ^ProbeHandler; 2 initialDelaySeconds i; 3 timeoutSeconds i; "
        "4 periodSeconds i; 5 successThreshold i; 6 failureThreshold i; "
        "7 terminationGracePeriodSeconds i!"
    ),
    "ProbeHandler": (
        "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; 4 grpc GRPCAction"
    ),
    "GRPCAction": "1 port i!; 2 service s!",
    "VolumeDevice": "1 name s!; 2 devicePath s!",
    "VolumeMount": (
        "1 name s!; 2 readOnly b; 3 mountPath s!; 4 subPath s; 5 mountPropagation s!; "
        "6 subPathExpr s; 7 recursiveReadOnly s!"
    ),
    "ContainerResizePolicy": "1 resourceName s!; 2 restartPolicy s!",
    "EnvVar": "1 name s!; 2 value s; 3 valueFrom EnvVarSource",
    "EnvVarSource": (
        "1 fieldRef ObjectFieldSelector; 2 resourceFieldRef ResourceFieldSelector; "
        "3 configMapKeyRef ConfigMapKeySelector; 4 secretKeyRef SecretKeySelector"
    ),
    "SecretKeySelector": "1 localObjectReference ^LocalObjectReference; 2 key s!; 3 optional b!",
    "ConfigMapKeySelector": "1 localObjectReference ^LocalObjectReference; 2 key s!; 3 optional b!",
    "ResourceFieldSelector": "1 containerName s; 2 resource s!; 3 divisor Quantity",
    "ObjectFieldSelector": "1 apiVersion s; 2 fieldPath s!",
    "EnvFromSource": "1 prefix s; 2 configMapRef ConfigMapEnvSource; 3 secretRef SecretEnvSource",
    "SecretEnvSource": "1 localObjectReference ^LocalObjectReference; 2 optional b!",
    "ConfigMapEnvSource": "1 localObjectReference ^LocalObjectReference; 2 optional b!",
    "ContainerPort": "1 name s; 2 hostPort i; 3 containerPort i!; 4 protocol s; 5 hostIP s",
    "Container": (
        "1 name s!; 2 image s; 3 command *s; 4 args *s; 5 workingDir s; 6 ports *ContainerPort; "
        "7 env *EnvVar; 8 resources ResourceRequirements; 9 volumeMounts *VolumeMount; "
        "10 livenessProbe Probe; 11 readinessProbe Probe; 12 lifecycle Lifecycle; "
        "13 terminationMessagePath s; 14 imagePullPolicy s; 15 securityContext SecurityContext; "
        "16 stdin b; 17 stdinOnce b; 18 tty b; 19 envFrom *EnvFromSource; "
        "20 terminationMessagePolicy s; 21 volumeDevices *VolumeDevice; 22 startupProbe Probe; "
        "23 resizePolicy *ContainerResizePolicy; 24 restartPolicy s!"
    ),
    "Volume": "1 name s!; 2 volumeSource ^VolumeSource",
    "VolumeSource": (
        "1 hostPath HostPathVolumeSource; 2 emptyDir EmptyDirVolumeSource; "
        "3 gcePersistentDisk GCEPersistentDiskVolumeSource; "
        "4 awsElasticBlockStore AWSElasticBlockStoreVolumeSource; 5 gitRepo GitRepoVolumeSource; "
        "6 secret SecretVolumeSource; 7 nfs NFSVolumeSource; 8 iscsi ISCSIVolumeSource; "
        "9 glusterfs GlusterfsVolumeSource; "
        "10 persistentVolumeClaim PersistentVolumeClaimVolumeSource; 11 rbd RBDVolumeSource; "
        "12 flexVolume FlexVolumeSource; 13 cinder CinderVolumeSource; "
        "14 cephfs CephFSVolumeSource; 15 flocker FlockerVolumeSource; "
        "16 downwardAPI DownwardAPIVolumeSource; 17 fc FCVolumeSource; "
        "18 azureFile AzureFileVolumeSource; 19 configMap ConfigMapVolumeSource; "
        "20 vsphereVolume VsphereVirtualDiskVolumeSource; 21 quobyte QuobyteVolumeSource; "
        "22 azureDisk AzureDiskVolumeSource; "
        "23 photonPersistentDisk PhotonPersistentDiskVolumeSource; "
        "24 portworxVolume PortworxVolumeSource; 25 scaleIO ScaleIOVolumeSource; "
        "26 projected ProjectedVolumeSource; 27 storageos StorageOSVolumeSource; "
        "28 csi CSIVolumeSource; 29 ephemeral EphemeralVolumeSource; 30 image ImageVolumeSource"
    ),
    "ImageVolumeSource": "1 reference s; 2 pullPolicy s",
    "EphemeralVolumeSource": "1 volumeClaimTemplate PersistentVolumeClaimTemplate",
    "PersistentVolumeClaimTemplate": "1 metadata ObjectMeta; 2 spec PersistentVolumeClaimSpec",
    "PersistentVolumeClaimSpec": (
        "1 accessModes *s; 2 resources VolumeResourceRequirements; 3 volumeName s; "
        "4 selector LabelSelector; 5 storageClassName s!; 6 volumeMode s!; "
        "7 dataSource TypedLocalObjectReference; 8 dataSourceRef TypedObjectReference; "
        "9 volumeAttributesClassName s!"
    ),
    "TypedObjectReference": "1 apiGroup s!; 2 kind s!; 3 name s!; 4 namespace s!",
    "VolumeResourceRequirements": "1 limits {Quantity}; 2 requests {Quantity}",
    "CSIVolumeSource": (
        "1 driver s!; 2 readOnly b!; 3 fsType s!; 4 volumeAttributes {s}; "
        "5 nodePublishSecretRef LocalObjectReference"
    ),
    "StorageOSVolumeSource": (
        "1 volumeName s; 2 volumeNamespace s; 3 fsType s; 4 readOnly b; "
        "5 secretRef LocalObjectReference"
    ),
    "ScaleIOVolumeSource": (
        "1 gateway s!; 2 system s!; 3 secretRef LocalObjectReference; 4 sslEnabled b; "
        "5 protectionDomain s; 6 storagePool s; 7 storageMode s; 8 volumeName s; 9 fsType s; "
        "10 readOnly b"
    ),
    "PortworxVolumeSource": "1 volumeID s!; 2 fsType s; 3 readOnly b",
    "ProjectedVolumeSource": "1 sources *VolumeProjection; 2 defaultMode i!",
    "VolumeProjection": (
        "1 secret SecretProjection; 2 downwardAPI DownwardAPIProjection; "
        "3 configMap ConfigMapProjection; 4 serviceAccountToken ServiceAccountTokenProjection; "
        "5 clusterTrustBundle ClusterTrustBundleProjection"
    ),
    "ClusterTrustBundleProjection": (
        "1 name s!; 2 signerName s!; 3 labelSelector LabelSelector; 4 path s!; 5 optional b!"
    ),
    "ServiceAccountTokenProjection": "1 audience s; 2 expirationSeconds i!; 3 path s!",
    "ConfigMapProjection": (
        "1 localObjectReference ^LocalObjectReference; 2 items *KeyToPath; 4 optional b!"
    ),
    "KeyToPath": "1 key s!; 2 path s!; 3 mode i!",
    "DownwardAPIProjection": "1 items *DownwardAPIVolumeFile",
    "DownwardAPIVolumeFile": (
        "1 path s!; 2 fieldRef ObjectFieldSelector; 3 resourceFieldRef ResourceFieldSelector; "
        "4 mode i!"
    ),
    "SecretProjection": (
        "1 localObjectReference ^LocalObjectReference; 2 items *KeyToPath; 4 optional b!"
    ),
    "PhotonPersistentDiskVolumeSource": "1 pdID s!; 2 fsType s",
    "AzureDiskVolumeSource": (
        "1 diskName s!; 2 diskURI s!; 3 cachingMode s!; 4 fsType s!; 5 readOnly b!; 6 kind s!"
    ),
    "QuobyteVolumeSource": (
        "1 registry s!; 2 volume s!; 3 readOnly b; 4 user s; 5 group s; 6 tenant s"
    ),
    "VsphereVirtualDiskVolumeSource": (
        "1 volumePath s!; 2 fsType s; 3 storagePolicyName s; 4 storagePolicyID s"
    ),
    "ConfigMapVolumeSource": (
        "1 localObjectReference ^LocalObjectReference; 2 items *KeyToPath; 3 defaultMode i!; "
        "4 optional b!"
    ),
    "AzureFileVolumeSource": "1 secretName s!; 2 shareName s!; 3 readOnly b",
    "FCVolumeSource": "1 targetWWNs *s; 2 lun i!; 3 fsType s; 4 readOnly b; 5 wwids *s",
    "DownwardAPIVolumeSource": "1 items *DownwardAPIVolumeFile; 2 defaultMode i!",
    "FlockerVolumeSource": "1 datasetName s; 2 datasetUUID s",
    "CephFSVolumeSource": (
        "1 monitors *s; 2 path s; 3 user s; 4 secretFile s; 5 secretRef LocalObjectReference; "
        "6 readOnly b"
    ),
    "CinderVolumeSource": (
        "1 volumeID s!; 2 fsType s; 3 readOnly b; 4 secretRef LocalObjectReference"
    ),
    "FlexVolumeSource": (
        "1 driver s!; 2 fsType s; 3 secretRef LocalObjectReference; 4 readOnly b; 5 options {s}"
    ),
    "RBDVolumeSource": (
        "1 monitors *s; 2 image s!; 3 fsType s; 4 pool s; 5 user s; 6 keyring s; "
        "7 secretRef LocalObjectReference; 8 readOnly b"
    ),
    "PersistentVolumeClaimVolumeSource": "1 claimName s!; 2 readOnly b",
    "GlusterfsVolumeSource": "1 endpoints s!; 2 path s!; 3 readOnly b",
    "ISCSIVolumeSource": (
        "1 targetPortal s!; 2 iqn s!; 3 lun i!; 4 iscsiInterface s; 5 fsType s; 6 readOnly b; "
        "7 portals *s; 8 chapAuthDiscovery b; 10 secretRef LocalObjectReference; "
        "11 chapAuthSession b; 12 initiatorName s!"
    ),
    "NFSVolumeSource": "1 server s!; 2 path s!; 3 readOnly b",
    "SecretVolumeSource": "1 secretName s; 2 items *KeyToPath; 3 defaultMode i!; 4 optional b!",
    "GitRepoVolumeSource": "1 repository s!; 2 revision s; 3 directory s",
    "AWSElasticBlockStoreVolumeSource": "1 volumeID s!; 2 fsType s; 3 partition i; 4 readOnly b",
    "GCEPersistentDiskVolumeSource": "1 pdName s!; 2 fsType s; 3 partition i; 4 readOnly b",
    "EmptyDirVolumeSource": "1 medium s; 2 sizeLimit Quantity",
    "HostPathVolumeSource": "1 path s!; 2 type s!",
    "SuccessPolicy": "1 rules *SuccessPolicyRule",
    "SuccessPolicyRule": "1 succeededIndexes s!; 2 succeededCount i!",
    "PodFailurePolicy": "1 rules *PodFailurePolicyRule",
    "PodFailurePolicyRule": (
        "1 action s!; 2 onExitCodes PodFailurePolicyOnExitCodesRequirement; "
        "3 onPodConditions *PodFailurePolicyOnPodConditionsPattern"
    ),
    "PodFailurePolicyOnPodConditionsPattern": "1 type s!; 2 status s!",
    "PodFailurePolicyOnExitCodesRequirement": "1 containerName s!; 2 operator s!; 3 values *i",
    "Job": "1 metadata ObjectMeta; 2 spec JobSpec; 3 status JobStatus",
    "JobStatus": (
        "1 conditions *JobCondition; 2 startTime Time; 3 completionTime Time; 4 active i; "
        "5 succeeded i; 6 failed i; 7 completedIndexes s; "
        "8 uncountedTerminatedPods UncountedTerminatedPods; 9 ready i!; 10 failedIndexes s!; "
        "11 terminating i!"
    ),
    "UncountedTerminatedPods": "1 succeeded *s; 2 failed *s",
    "JobCondition": (
        "1 type s!; 2 status s!; 3 lastProbeTime Time; 4 lastTransitionTime Time; 5 reason s; "
        "6 message s"
    ),
    "Deployment": "1 metadata ObjectMeta; 2 spec DeploymentSpec; 3 status DeploymentStatus",
    "DeploymentStatus": (
        "1 observedGeneration i; 2 replicas i; 3 updatedReplicas i; 4 availableReplicas i; "
        "5 unavailableReplicas i; 6 conditions *DeploymentCondition; 7 readyReplicas i; "
        "8 collisionCount i!"
    ),
    "DeploymentCondition": (
        "1 type s!; 2 status s!; 4 reason s; 5 message s; 6 lastUpdateTime Time; "
        "7 lastTransitionTime Time"
    ),
    "DeploymentSpec": (
        "1 replicas i!; 2 selector LabelSelector; 3 template PodTemplateSpec; "
        "4 strategy DeploymentStrategy; 5 minReadySeconds i; 6 revisionHistoryLimit i!; "
        "7 paused b; 9 progressDeadlineSeconds i!"
    ),
    "DeploymentStrategy": "1 type s; 2 rollingUpdate RollingUpdateDeployment",
    "RollingUpdateDeployment": "1 maxUnavailable IntOrString; 2 maxSurge IntOrString",
    "Service": "1 metadata ObjectMeta; 2 spec ServiceSpec; 3 status ServiceStatus",
    "ServiceStatus": "1 loadBalancer LoadBalancerStatus; 2 conditions *Condition",
    "LoadBalancerStatus": "1 ingress *LoadBalancerIngress",
    "LoadBalancerIngress": "1 ip s; 2 hostname s; 3 ipMode s!; 4 ports *PortStatus",
    "PortStatus": "1 port i!; 2 protocol s!; 3 error s!",
    "ServiceSpec": (
        "1 ports *ServicePort; 2 selector {s}; 3 clusterIP s; 4 type s; 5 externalIPs *s; "
        "7 sessionAffinity s; 8 loadBalancerIP s; 9 loadBalancerSourceRanges *s; "
        "10 externalName s; 11 externalTrafficPolicy s; 12 healthCheckNodePort i; "
        "13 publishNotReadyAddresses b; 14 sessionAffinityConfig SessionAffinityConfig; "
        "17 ipFamilyPolicy s!; 18 clusterIPs *s; 19 ipFamilies *s; "
        "20 allocateLoadBalancerNodePorts b!; 21 loadBalancerClass s!; "
        "22 internalTrafficPolicy s!; 23 trafficDistribution s!"
    ),
    "SessionAffinityConfig": "1 clientIP ClientIPConfig",
    "ClientIPConfig": "1 timeoutSeconds i!",
    "ServicePort": (
        "1 name s; 2 protocol s; 3 port i!; 4 targetPort IntOrString; 5 nodePort i; "
        "6 appProtocol s!"
    ),
    "ServiceAccount": (
        "1 metadata ObjectMeta; 2 secrets *ObjectReference; "
        "3 imagePullSecrets *LocalObjectReference; 4 automountServiceAccountToken b!"
    ),
    "Namespace": "1 metadata ObjectMeta; 2 spec NamespaceSpec; 3 status NamespaceStatus",
    "NamespaceStatus": "1 phase s; 2 conditions *NamespaceCondition",
    "NamespaceCondition": (
        "1 type s!; 2 status s!; 4 lastTransitionTime Time; 5 reason s; 6 message s"
    ),
    "NamespaceSpec": "1 finalizers *s",
    "Secret": "1 metadata ObjectMeta; 2 data {y}; 3 type s; 4 stringData {s}; 5 immutable b!",
    "ConfigMap": "1 metadata ObjectMeta; 2 data {s}; 3 binaryData {y}; 4 immutable b!",
}

# Messages that map to one JSON scalar rather than an object.
_SPECIAL = frozenset({"Time", "MicroTime", "Quantity", "IntOrString", "FieldsV1"})
_SCALARS = frozenset({"s", "i", "b", "y"})


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    type: str  # "s", "i", "b", "y" or a message name
    repeated: bool = False
    map: bool = False
    inline: bool = False
    keep_zero: bool = False


def _parse_schema(schema: dict[str, str]) -> dict[str, dict[int, _Field]]:
    tables: dict[str, dict[int, _Field]] = {}
    for message, spec in schema.items():
        table: dict[int, _Field] = {}
        for entry in spec.split(";"):
            number, name, type_ = entry.split()
            keep_zero = type_.endswith("!")
            type_ = type_.rstrip("!")
            field = _Field(
                name,
                type_.strip("*^{}"),
                repeated=type_.startswith("*"),
                map=type_.startswith("{"),
                inline=type_.startswith("^"),
                keep_zero=keep_zero,
            )
            table[int(number)] = field
        tables[message] = table
    for table in tables.values():
        for field in table.values():
            if (
                field.type not in _SCALARS
                and field.type not in _SPECIAL
                and field.type not in tables
            ):
                raise ValueError(f"protobuf schema: no table for message {field.type}")
    return tables


_MESSAGES = _parse_schema(_SCHEMA)


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a ``application/vnd.kubernetes.protobuf`` request body into its JSON object.

    The result carries ``apiVersion`` and ``kind`` from the envelope followed by the object's
    fields, as kubectl would have sent them in JSON. Raises a 400 ``StatusError`` for a body
    that is not well-formed, and a 415 one for a kind this module has no table for.
    """
    if not body.startswith(MAGIC):
        raise bad_request(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        )
    envelope = memoryview(body)[len(MAGIC) :]
    api_version = kind = ""
    raw: memoryview | None = None
    for number, wire_type, value in _fields(envelope):
        if number == 1:
            type_meta = _expect_len(wire_type, value, "typeMeta")
            for sub_number, sub_wire, sub_value in _fields(type_meta):
                if sub_number == 1:
                    api_version = _text(_expect_len(sub_wire, sub_value, "apiVersion"))
                elif sub_number == 2:
                    kind = _text(_expect_len(sub_wire, sub_value, "kind"))
        elif number == 2:
            raw = _expect_len(wire_type, value, "raw")
        elif number == 3:
            encoding = _text(_expect_len(wire_type, value, "contentEncoding"))
            if encoding:
                raise bad_request(f"unsupported protobuf content encoding {encoding!r}")
        elif number == 4:
            content_type = _text(_expect_len(wire_type, value, "contentType"))
            if content_type not in ("", PROTOBUF_CONTENT_TYPE):
                raise bad_request(f"unsupported protobuf content type {content_type!r}")
    if not kind:
        raise bad_request("Object 'Kind' is missing in protobuf body")
    if not api_version:
        raise bad_request("Object 'apiVersion' is missing in protobuf body")
    message = _KINDS.get((api_version, kind))
    if message is None:
        raise unsupported_media_type(PROTOBUF_CONTENT_TYPE)
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    obj.update(_message(message, raw if raw is not None else memoryview(b"")))
    return obj


# --- wire reader ------------------------------------------------------------------------


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Read a base-128 varint at ``pos``; return (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise bad_request("protobuf body is truncated: unexpected end inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise bad_request("protobuf body is malformed: varint is longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for each field of one message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise bad_request("protobuf body is malformed: field number 0")
        value: int | memoryview
        if wire_type == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire_type in (_FIXED64, _FIXED32):
            size = 8 if wire_type == _FIXED64 else 4
            if pos + size > len(buf):
                raise bad_request("protobuf body is truncated: unexpected end inside a fixed field")
            value = int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        elif wire_type == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise bad_request("protobuf body is truncated: length runs past the end")
            value = buf[pos : pos + size]
            pos += size
        else:
            raise bad_request(f"protobuf body is malformed: unsupported wire type {wire_type}")
        yield number, wire_type, value


def _expect_len(wire_type: int, value: int | memoryview, name: str) -> memoryview:
    if wire_type != _LEN or not isinstance(value, memoryview):
        raise bad_request(
            f"protobuf body is malformed: wrong wire type {wire_type} for field {name}"
        )
    return value


def _expect_varint(wire_type: int, value: int | memoryview, name: str) -> int:
    if wire_type != _VARINT or not isinstance(value, int):
        raise bad_request(
            f"protobuf body is malformed: wrong wire type {wire_type} for field {name}"
        )
    return value


def _text(value: memoryview) -> str:
    # Go does not validate UTF-8 here; its JSON encoder replaces invalid bytes with U+FFFD.
    return bytes(value).decode("utf-8", errors="replace")


def _signed(value: int) -> int:
    """Two's-complement view of a 64-bit varint (int32 and int64 are both sign-extended)."""
    return value - (1 << 64) if value >= 1 << 63 else value


# --- schema-driven decoding ---------------------------------------------------------------


def _message(name: str, buf: memoryview, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decode one message of type ``name`` into ``out`` (a new dict unless inlining)."""
    table = _MESSAGES[name]
    obj: dict[str, Any] = {} if out is None else out
    for number, wire_type, value in _fields(buf):
        field = table.get(number)
        if field is None:
            continue  # unknown fields are skipped
        if field.map:
            key, item = _map_entry(field, _expect_len(wire_type, value, field.name))
            obj.setdefault(field.name, {})[key] = item
        elif field.inline:
            _message(field.type, _expect_len(wire_type, value, field.name), obj)
        elif field.repeated:
            items = obj.setdefault(field.name, [])
            if field.type in ("i", "b") and wire_type == _LEN:  # packed encoding
                packed = _expect_len(wire_type, value, field.name)
                pos = 0
                while pos < len(packed):
                    number_value, pos = _varint(packed, pos)
                    items.append(_scalar(field, number_value))
            else:
                items.append(_value(field, wire_type, value))
        elif field.type in _SCALARS:
            scalar = _value(field, wire_type, value)
            if field.keep_zero or scalar not in ("", 0):  # 0 == False
                obj[field.name] = scalar
            else:
                obj.pop(field.name, None)
        elif field.type not in _SPECIAL and isinstance(obj.get(field.name), dict):
            # A message field seen twice on the wire is merged, as protobuf requires.
            _message(field.type, _expect_len(wire_type, value, field.name), obj[field.name])
        else:
            obj[field.name] = _value(field, wire_type, value)
    return obj


def _value(field: _Field, wire_type: int, value: int | memoryview) -> Any:
    if field.type in ("i", "b"):
        return _scalar(field, _expect_varint(wire_type, value, field.name))
    data = _expect_len(wire_type, value, field.name)
    if field.type == "s":
        return _text(data)
    if field.type == "y":
        return base64.b64encode(data).decode("ascii")
    if field.type in _SPECIAL:
        return _special(field.type, data)
    return _message(field.type, data)


def _scalar(field: _Field, value: int) -> int | bool:
    return value != 0 if field.type == "b" else _signed(value)


def _map_entry(field: _Field, buf: memoryview) -> tuple[str, Any]:
    """Decode one map entry (1 key, 2 value); a missing value is the type's zero value."""
    key = ""
    item: Any = None
    for number, wire_type, value in _fields(buf):
        if number == 1:
            key = _text(_expect_len(wire_type, value, field.name + " key"))
        elif number == 2:
            item = _value(field, wire_type, value)
    if item is None and field.type in ("i", "b"):
        item = _scalar(field, 0)
    elif item is None:
        item = _value(field, _LEN, memoryview(b""))
    return key, item


def _special(type_: str, buf: memoryview) -> Any:
    """Messages that JSON renders as a scalar: times, quantities, int-or-string, raw JSON."""
    parts: dict[int, int | memoryview] = {}
    for number, wire_type, value in _fields(buf):
        parts[number] = value
        if number in _SPECIAL_WIRE[type_] and wire_type != _SPECIAL_WIRE[type_][number]:
            raise bad_request(f"protobuf body is malformed: wrong wire type {wire_type} in {type_}")
    if type_ in ("Time", "MicroTime"):
        seconds = _signed(_int(parts.get(1, 0)))
        nanos = _signed(_int(parts.get(2, 0)))
        if seconds == 0 and nanos == 0:
            return None  # the zero time
        return _format_time(seconds, nanos, micro=type_ == "MicroTime")
    if type_ == "Quantity":
        return _text(_bytes(parts.get(1, memoryview(b"")))) or "0"
    if type_ == "IntOrString":
        if _int(parts.get(1, 0)) == 0:
            return _signed(_int(parts.get(2, 0)))
        return _text(_bytes(parts.get(3, memoryview(b""))))
    # FieldsV1: the field set as embedded JSON bytes.
    raw = bytes(_bytes(parts.get(1, memoryview(b""))))
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"protobuf body is malformed: invalid JSON in {type_}: {exc}") from None


_SPECIAL_WIRE: dict[str, dict[int, int]] = {
    "Time": {1: _VARINT, 2: _VARINT},
    "MicroTime": {1: _VARINT, 2: _VARINT},
    "Quantity": {1: _LEN},
    "IntOrString": {1: _VARINT, 2: _VARINT, 3: _LEN},
    "FieldsV1": {1: _LEN},
}


def _int(value: int | memoryview) -> int:
    assert isinstance(value, int)  # wire types were checked in _special
    return value


def _bytes(value: int | memoryview) -> memoryview:
    assert isinstance(value, memoryview)
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _format_time(seconds: int, nanos: int, *, micro: bool) -> str:
    """RFC 3339 in UTC, as metav1.Time (whole seconds) and MicroTime (6 digits) print."""
    try:
        moment = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise bad_request(f"protobuf body is malformed: time {seconds}s out of range") from None
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
