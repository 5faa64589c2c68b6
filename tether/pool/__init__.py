"""Several models in one server: which models are configured (``spec``), how much memory
one will take (``memory``), which engine serves it (``factory``), and the pool that loads
them on demand and unloads them under a budget (``pool``)."""
