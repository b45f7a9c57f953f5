"""A lean AWS client for the paths a container task takes: no botocore on the hot path.

botocore costs a bootstrap about 150 ms (imports and client creation) of a ~230 ms start, on every
container start of a fleet. For the environments ECS, Fargate and EKS actually give a task, the
entrypoint needs little of it: credentials from the environment, IRSA (one unsigned STS call),
the container credentials endpoint or IMDS; one SigV4-signed JSON POST; endpoints of the standard
partitions. This package does exactly that with the standard library, and `eligibility` says when
it must not: profiles and config files, proxies, FIPS/dual-stack, isolated partitions. There,
and whenever it meets something it does not handle, the botocore client takes over.

Correctness is checked against botocore itself: the signer is compared with botocore's SigV4
signer in the tests, and the emulator recomputes every signature with botocore's signer.
"""
