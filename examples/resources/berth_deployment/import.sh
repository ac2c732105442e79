# Deployments import by namespace/name.
terraform import berth_deployment.web default/web
