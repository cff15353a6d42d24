"""Project templates shipped with cprsdk (rendered by ``cprsdk init`` and ``cprsdk package``)."""
