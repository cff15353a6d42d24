class NoPredict:
    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def infer(self, instances):
        return instances
