"""buildfarm: a Kubernetes operator for a farm of build machines for Expo / React Native apps."""
