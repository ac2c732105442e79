# Services import by namespace/name.
terraform import berth_service.web default/web
