# Pods import by namespace/name.
terraform import berth_pod.debug default/debug-x7k2p
