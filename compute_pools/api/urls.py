from compute_pools.api.views import AcceleratorTypeViewSet, ComputePoolViewSet, PoolGrantViewSet


def register(router) -> None:
    router.register("accelerator-types", AcceleratorTypeViewSet, basename="accelerator-type")
    router.register("compute-pools", ComputePoolViewSet, basename="compute-pool")
    router.register("pool-grants", PoolGrantViewSet, basename="pool-grant")
